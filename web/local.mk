# web/local.mk - the live status page, embedded into the gateway.
