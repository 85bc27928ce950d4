# mock/local.mk - included by the top-level Makefile.am (non-recursive build).
# libmcpgw-mock: the mock gateway a plugin's unit tests link against
# (include/mcpgw/mock_host.h, mcpgw-mock.pc), installed with the plugin SDK;
# and the unit tests of the shipped plugins written with it. Like a plugin,
# the library and the tests see only include/ (the SDK), never core/, but
# for one header: core/plugin_abi.h, the rules a host applies to a plugin
# (descriptor check, claim rule), linked in from core/libmcpgwabi.la so
# that the mock and the gateway judge a plugin alike.

SDK_CPPFLAGS = -I$(top_srcdir)/include

lib_LTLIBRARIES += mock/libmcpgw-mock.la
mock_libmcpgw_mock_la_SOURCES = mock/mock_host.c
mock_libmcpgw_mock_la_CPPFLAGS = $(SDK_CPPFLAGS) -iquote $(top_srcdir)/core
mock_libmcpgw_mock_la_LIBADD = core/libmcpgwabi.la $(JANSSON_LIBS)
mock_libmcpgw_mock_la_LDFLAGS = $(AM_LDFLAGS) -version-info 0:0:0 \
	-export-symbols-regex '^mcpgw_mock_'

mcpgwinclude_HEADERS += include/mcpgw/mock_host.h
pkgconfig_DATA += mcpgw-mock.pc
EXTRA_DIST += mcpgw-mock.pc.in

# Each test links its plugin's source in (the plugin's descriptor is then
# the test's mcpgw_plugin_descriptor) and also loads the built .so where it
# says so, from MCPGW_MOCK_PLUGIN_DIR.
MOCK_TESTS = tests/mock/test_ping tests/mock/test_batch tests/mock/test_agent_status \
	tests/mock/test_mock_host
check_PROGRAMS += $(MOCK_TESTS)
TESTS += $(MOCK_TESTS)
MOCK_TEST_CPPFLAGS = $(SDK_CPPFLAGS) -I$(top_srcdir)/tests/unit \
	-DMCPGW_MOCK_PLUGIN_DIR='"$(abs_top_builddir)/plugins/.libs"'
MOCK_TEST_LDADD = mock/libmcpgw-mock.la $(JANSSON_LIBS)

tests_mock_test_ping_SOURCES = tests/mock/test_ping.c plugins/ping.c tests/unit/unit.h
tests_mock_test_ping_CPPFLAGS = $(MOCK_TEST_CPPFLAGS)
tests_mock_test_ping_LDADD = $(MOCK_TEST_LDADD)
EXTRA_tests_mock_test_ping_DEPENDENCIES = plugins/ping.la

tests_mock_test_batch_SOURCES = tests/mock/test_batch.c plugins/batch.c tests/unit/unit.h
tests_mock_test_batch_CPPFLAGS = $(MOCK_TEST_CPPFLAGS)
tests_mock_test_batch_LDADD = $(MOCK_TEST_LDADD)
EXTRA_tests_mock_test_batch_DEPENDENCIES = plugins/ping.la

tests_mock_test_agent_status_SOURCES = tests/mock/test_agent_status.c plugins/agent_status.c \
	tests/unit/unit.h
tests_mock_test_agent_status_CPPFLAGS = $(MOCK_TEST_CPPFLAGS)
tests_mock_test_agent_status_LDADD = $(MOCK_TEST_LDADD)

tests_mock_test_mock_host_SOURCES = tests/mock/test_mock_host.c tests/unit/unit.h
tests_mock_test_mock_host_CPPFLAGS = $(MOCK_TEST_CPPFLAGS)
tests_mock_test_mock_host_LDADD = $(MOCK_TEST_LDADD)
