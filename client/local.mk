# client/local.mk - included by the top-level Makefile.am (non-recursive build).
# libmcpgw-client (client, pool, batcher), mcpgw-cli, their tests and the
# README example. The library's objects live in a convenience library so the
# unit tests can reach internal functions; the installed library exports
# only the public mcpgw_client_* / mcpgw_pool_* / mcpgw_batcher_* API. The
# protocol itself (frames, permessage-deflate, the accept key) comes from
# libmcpgw-proto (core/libmcpgwproto.la, see Makefile.am); mcpgw-cli mints
# tokens with its JWT half.

CLIENT_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS) $(LIBEVENT_OPENSSL_CFLAGS) $(OPENSSL_CFLAGS) $(ZLIB_CFLAGS)
CLIENT_LIBS = $(LIBEVENT_LIBS) $(LIBEVENT_OPENSSL_LIBS) $(OPENSSL_LIBS) $(ZLIB_LIBS) $(JANSSON_LIBS) -lm

noinst_LTLIBRARIES += client/libmcpgwclient_impl.la
client_libmcpgwclient_impl_la_SOURCES = \
	client/client_int.h client/client.c \
	client/request.c \
	client/pool.c \
	client/batcher.c \
	client/backoff.c \
	client/random.c client/random.h \
	client/queue.c client/queue.h \
	client/upgrade.c client/upgrade.h \
	client/url.c client/url.h
client_libmcpgwclient_impl_la_CFLAGS = $(CLIENT_CFLAGS)
# Frames, UTF-8, permessage-deflate and the accept key: libmcpgw-proto.
client_libmcpgwclient_impl_la_LIBADD = $(PROTO_LIBS) $(CLIENT_LIBS)

lib_LTLIBRARIES += client/libmcpgw-client.la
client_libmcpgw_client_la_SOURCES =
client_libmcpgw_client_la_LIBADD = client/libmcpgwclient_impl.la $(CLIENT_LIBS)
client_libmcpgw_client_la_LDFLAGS = $(AM_LDFLAGS) -version-info 0:0:0 \
	-export-symbols-regex '^mcpgw_(client|pool|batcher)_'
# An empty source list: tell automake to link with the C compiler.
nodist_EXTRA_client_libmcpgw_client_la_SOURCES = client/dummy.c

mcpgwinclude_HEADERS += include/mcpgw/client.h
pkgconfig_DATA += mcpgw-client.pc
EXTRA_DIST += mcpgw-client.pc.in

# ---------------------------------------------------------------- mcpgw-cli
bin_PROGRAMS += tools/mcpgw-cli
tools_mcpgw_cli_SOURCES = tools/mcpgw-cli.c
tools_mcpgw_cli_CFLAGS = $(CLIENT_CFLAGS) $(LIBJWT_CFLAGS)
tools_mcpgw_cli_LDADD = client/libmcpgw-client.la core/libmcpgwproto_jwt.la $(CLIENT_LIBS) \
	$(LIBJWT_LIBS)

# ---------------------------------------------------------------- README example
noinst_PROGRAMS += examples/client/example
examples_client_example_SOURCES = examples/client/example.c
examples_client_example_CFLAGS = $(CLIENT_CFLAGS)
examples_client_example_LDADD = client/libmcpgw-client.la $(CLIENT_LIBS)

# ---------------------------------------------------------------- tests
# Unit tests of the pure parts (linked statically against the internals),
# and live tests against the real gateway (core/mcpgw, found through
# $MCPGW_BUILDDIR or the current directory) using the installed library.
CLIENT_TESTS = tests/client/test_client_unit tests/client/test_client_live \
	tests/client/test_batcher tests/client/test_pool tests/client/test_cli \
	tests/client/test_wss
check_PROGRAMS += $(CLIENT_TESTS)
TESTS += $(CLIENT_TESTS)
CLIENT_TEST_CFLAGS = $(CLIENT_CFLAGS) -I$(top_srcdir)/tests/unit -I$(top_srcdir)/client
CLIENT_LIVE_SOURCES = tests/client/gw.c tests/client/gw.h tests/unit/unit.h

tests_client_test_client_unit_SOURCES = tests/client/test_client_unit.c tests/unit/unit.h
tests_client_test_client_unit_CFLAGS = $(CLIENT_TEST_CFLAGS)
tests_client_test_client_unit_LDADD = client/libmcpgwclient_impl.la $(CLIENT_LIBS)

tests_client_test_client_live_SOURCES = tests/client/test_client_live.c $(CLIENT_LIVE_SOURCES)
tests_client_test_client_live_CFLAGS = $(CLIENT_TEST_CFLAGS)
tests_client_test_client_live_LDADD = client/libmcpgw-client.la $(CLIENT_LIBS)

tests_client_test_batcher_SOURCES = tests/client/test_batcher.c $(CLIENT_LIVE_SOURCES)
tests_client_test_batcher_CFLAGS = $(CLIENT_TEST_CFLAGS)
tests_client_test_batcher_LDADD = client/libmcpgw-client.la $(CLIENT_LIBS)

tests_client_test_pool_SOURCES = tests/client/test_pool.c $(CLIENT_LIVE_SOURCES)
tests_client_test_pool_CFLAGS = $(CLIENT_TEST_CFLAGS)
tests_client_test_pool_LDADD = client/libmcpgw-client.la $(CLIENT_LIBS)

tests_client_test_cli_SOURCES = tests/client/test_cli.c $(CLIENT_LIVE_SOURCES)
tests_client_test_cli_CFLAGS = $(CLIENT_TEST_CFLAGS)
tests_client_test_cli_LDADD = client/libmcpgw-client.la $(CLIENT_LIBS)

tests_client_test_wss_SOURCES = tests/client/test_wss.c $(CLIENT_LIVE_SOURCES)
tests_client_test_wss_CFLAGS = $(CLIENT_TEST_CFLAGS)
tests_client_test_wss_LDADD = client/libmcpgw-client.la $(CLIENT_LIBS)
