# client/local.mk - included by the top-level Makefile.am (non-recursive build).
