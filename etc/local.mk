# etc/local.mk - install layout: systemd unit, man pages, installed configuration.
# Included by the top-level Makefile.am (non-recursive build).
#
# make install puts, besides the binary, plugins, headers and mcpgw.pc:
#   $(sysconfdir)/mcpgw/conf.d/*.ini  the shipped conf.d/, made fit for
#                                     production (see MCPGW_CONF_SED); an
#                                     existing file is never overwritten
#   $(systemdsystemunitdir)/mcpgw.service  from etc/mcpgw.service.in
#   $(man8dir)/mcpgw.8, $(man5dir)/mcpgw.conf.5
# `make systemdsystemunitdir=DIR install` puts the unit elsewhere.

mcpgwconfdir = $(sysconfdir)/mcpgw
mcpgwconfddir = $(mcpgwconfdir)/conf.d
systemdsystemunitdir = $(prefix)/lib/systemd/system

# ---------------------------------------------------------------- man pages
dist_man_MANS = man/mcpgw.8 man/mcpgw.conf.5

# ---------------------------------------------------------------- systemd unit
systemdsystemunit_DATA = etc/mcpgw.service
EXTRA_DIST += etc/mcpgw.service.in

MCPGW_PATH_SED = sed \
	-e 's|@sbindir[@]|$(sbindir)|g' \
	-e 's|@sysconfdir[@]|$(sysconfdir)|g' \
	-e 's|@pkglibdir[@]|$(pkglibdir)|g'

etc/mcpgw.service: $(srcdir)/etc/mcpgw.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) etc && \
	$(MCPGW_PATH_SED) $(srcdir)/etc/mcpgw.service.in >$@.tmp && mv $@.tmp $@

CLEANFILES += etc/mcpgw.service etc/mcpgw.service.tmp

# ---------------------------------------------------------------- configuration
# The installed conf.d is the shipped one without what only makes sense in
# the build tree: the [plugins] dir pointing at ../plugins/.libs (the
# compiled-in default is $(pkglibdir)/plugins) and the development
# jwt_secret (replaced by a hint: an installed gateway refuses to start
# until MCPGW_JWT_SECRET or jwt_secret_file is set).
MCPGW_CONF_SED = $(MCPGW_PATH_SED) \
	-e 's|: the demo that runs from the build tree\.|, as installed by make install.|' \
	-e 's|See README\.md for every key|See mcpgw.conf(5) for every key|' \
	-e '/^[ 	]*;.*[Dd]evelopment secret/d' \
	-e '/^[ 	]*;.*plugins built in the source tree/d' \
	-e 's|^[ 	]*dir[ 	]*=[ 	]*\.\./plugins/\.libs[ 	]*$$|; dir = $(pkglibdir)/plugins   (the default)|' \
	-e 's|^[ 	]*jwt_secret[ 	]*=.*$$|; No secret is installed: the gateway refuses to start until one is set.\n; Set MCPGW_JWT_SECRET (for the systemd unit: in $(mcpgwconfdir)/environment,\n; mode 600), or jwt_secret_file = /path/to/secret (see mcpgw.conf(5)).\n; jwt_secret = ...|'

# Every file of the shipped conf.d, by name (the list is read at make time
# so that a new conf.d file is installed without touching this fragment),
# except the *-demo.ini files: they point into the source tree (the MCP
# demo's npm packages).
MCPGW_CONF_FILES = `cd $(srcdir)/conf.d && ls *.ini | grep -v -e '-demo\.ini$$'`

install-data-local: mcpgw-install-conf
uninstall-local: mcpgw-uninstall-conf

# Installs each conf.d file unless a file of that name exists already
# (sysadmins edit them); says which were kept.
mcpgw-install-conf:
	$(MKDIR_P) '$(DESTDIR)$(mcpgwconfddir)'
	@for f in $(MCPGW_CONF_FILES); do \
	  dst='$(DESTDIR)$(mcpgwconfddir)'/$$f; \
	  if test -e "$$dst"; then \
	    echo "mcpgw: keeping the existing $$dst"; \
	  else \
	    echo " installing conf.d/$$f as $$dst"; \
	    $(MCPGW_CONF_SED) $(srcdir)/conf.d/$$f >"$$dst.tmp" && \
	    chmod 644 "$$dst.tmp" && mv "$$dst.tmp" "$$dst" || exit 1; \
	  fi; \
	done

# Removes each installed conf.d file that is still exactly as installed;
# a modified one stays (and with it the directory).
mcpgw-uninstall-conf:
	@for f in $(MCPGW_CONF_FILES); do \
	  dst='$(DESTDIR)$(mcpgwconfddir)'/$$f; \
	  test -e "$$dst" || continue; \
	  if $(MCPGW_CONF_SED) $(srcdir)/conf.d/$$f | cmp -s - "$$dst"; then \
	    echo " rm -f $$dst"; rm -f "$$dst"; \
	  else \
	    echo "mcpgw: keeping the modified $$dst"; \
	  fi; \
	done
	@rmdir '$(DESTDIR)$(mcpgwconfddir)' '$(DESTDIR)$(mcpgwconfdir)' 2>/dev/null || :

.PHONY: mcpgw-install-conf mcpgw-uninstall-conf mcpgw-install-dirs

# The install directories, for tests/integration/test_install.py.
mcpgw-install-dirs:
	@echo 'prefix=$(prefix)'
	@echo 'sbindir=$(sbindir)'
	@echo 'sysconfdir=$(sysconfdir)'
	@echo 'libdir=$(libdir)'
	@echo 'pkglibdir=$(pkglibdir)'
	@echo 'includedir=$(includedir)'
	@echo 'mandir=$(mandir)'
	@echo 'systemdsystemunitdir=$(systemdsystemunitdir)'
	@echo 'mcpgwconfddir=$(mcpgwconfddir)'
	@echo 'version=$(PACKAGE_VERSION)'

# The client library goes to $(libdir): a system-wide install (no DESTDIR,
# as root) refreshes the dynamic linker's cache, so a program linked with
# -lmcpgw-client runs at once; otherwise run `ldconfig` yourself.
install-exec-hook:
	@if test -z '$(DESTDIR)' && test "`id -u`" = 0 && command -v ldconfig >/dev/null 2>&1; then \
	  echo " ldconfig"; ldconfig || :; \
	fi
