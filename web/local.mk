# web/local.mk - the live status page, embedded into the gateway.
#
# web/status.html is the page's source; web/embed.sh (POSIX sh + od + awk)
# turns it into web/status_page.c at build time, in the build directory (VPATH
# and distcheck safe: the source tree is only read). The generated file is
# not distributed: every tree regenerates it from the page.
#
# core/http_api.c includes "web/status_page.h" when MCPGW_HAVE_STATUS_PAGE is
# defined: both come from here, so the page is served exactly when this
# fragment is part of the build.
AM_CPPFLAGS += -I$(top_srcdir) -DMCPGW_HAVE_STATUS_PAGE

nodist_core_libmcpgwcore_la_SOURCES = web/status_page.c
BUILT_SOURCES += web/status_page.c
CLEANFILES += web/status_page.c

web/status_page.c: $(srcdir)/web/status.html $(srcdir)/web/embed.sh
	$(AM_V_GEN)$(MKDIR_P) web && \
	$(SHELL) $(srcdir)/web/embed.sh $(srcdir)/web/status.html $@

# The browser test (tests/integration/test_status_page.py) installs
# playwright-core from npm into the build tree at first use.
clean-local: mcpgw-clean-web
mcpgw-clean-web:
	-rm -rf tests/.browser
.PHONY: mcpgw-clean-web

EXTRA_DIST += web/status.html web/embed.sh web/status_page.h web/.gitignore \
	tests/browser/package.json tests/browser/package-lock.json \
	tests/browser/driver.js tests/browser/browser.py tests/browser/.gitignore \
	docs/status.png
