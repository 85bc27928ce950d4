# fuzz/local.mk - included by the top-level Makefile.am (non-recursive build).
#
# libFuzzer targets for the input-facing code, and replay programs that run
# their checked-in corpora as regression tests in every build.
#
#   fuzz/fuzz_ws_frame  frame headers, policy check, unmask, UTF-8 (incremental = whole)
#   fuzz/fuzz_http      HTTP request head parser (prefixes need more) + handshake check
#   fuzz/fuzz_token     token extraction from the request + JWT verification
#   fuzz/fuzz_dispatch  JSON dispatch through the handler table, real plugins and connections
#   fuzz/fuzz_json      the JSON reader and writer, differential against jansson
#   fuzz/fuzz_json_view the message view (plugin ABI 1.4), differential against the reader
#   fuzz/fuzz_ws_msg    the message assembler: frames in pieces, continuation, limit, inflate, UTF-8
#
# The fuzz_* programs are built only with ./configure CC=clang --enable-fuzzing;
# `make fuzz` then runs each for FUZZ_SECONDS (default 60) and fails on a crash.
# The replay_* programs are check programs in every build: tests/run and
# `make check` run them over fuzz/corpus/TARGET/ (seeds and regress-* inputs).
# fuzz/fuzz_pmd.c (permessage-deflate offers, inflate, round trip; corpus in
# fuzz/corpus/pmd, fuzz/pmd.dict) is written against core/pmd.h; it is wired in
# (pmd added to FUZZ_NAMES, FUZZ_REPLAY, FUZZ_PROGS, with the same four
# variables per program as the others) once core/pmd.c is committed.

FUZZ_NAMES = ws_frame http token dispatch pmd json json_view ws_msg
FUZZ_CPPFLAGS = $(AM_CPPFLAGS) \
	-DMCPGW_FUZZ_PLUGIN_DIR='"$(abs_top_builddir)/plugins/.libs"' \
	-DMCPGW_FUZZ_TEST_PLUGIN_DIR='"$(abs_top_builddir)/tests/plugins/.libs"'
FUZZ_CFLAGS = $(core_libmcpgwcore_la_CFLAGS)
FUZZ_LDADD = core/libmcpgwcore.la
# The targets of pure code link libmcpgw-proto alone (see Makefile.am).
FUZZ_PROTO_LDADD = $(PROTO_LIBS)
FUZZ_JWT_LDADD = $(PROTO_JWT_LIBS)
# fuzz_dispatch loads the shipped plugins (and the async test plugin) from the build tree.
FUZZ_PLUGIN_DEPS = $(plugins_LTLIBRARIES) tests/plugins/async_echo.la

EXTRA_DIST += fuzz/corpus fuzz/http.dict fuzz/token.dict fuzz/dispatch.dict fuzz/run.sh \
	fuzz/pmd.dict fuzz/json.dict fuzz/json_view.dict

# ------------------------------------------------------------ replay (all builds)
FUZZ_REPLAY = fuzz/replay_ws_frame fuzz/replay_http fuzz/replay_token fuzz/replay_dispatch \
	fuzz/replay_pmd fuzz/replay_json fuzz/replay_json_view fuzz/replay_ws_msg
check_PROGRAMS += $(FUZZ_REPLAY)
TESTS += $(FUZZ_REPLAY)

fuzz_replay_ws_frame_SOURCES = fuzz/replay.c fuzz/fuzz_ws_frame.c fuzz/fuzz_common.h
fuzz_replay_ws_frame_CPPFLAGS = $(FUZZ_CPPFLAGS) -DMCPGW_FUZZ_CORPUS='"$(abs_top_srcdir)/fuzz/corpus/ws_frame"'
fuzz_replay_ws_frame_CFLAGS = $(FUZZ_CFLAGS)
fuzz_replay_ws_frame_LDADD = $(FUZZ_PROTO_LDADD)

fuzz_replay_http_SOURCES = fuzz/replay.c fuzz/fuzz_http.c fuzz/fuzz_common.h
fuzz_replay_http_CPPFLAGS = $(FUZZ_CPPFLAGS) -DMCPGW_FUZZ_CORPUS='"$(abs_top_srcdir)/fuzz/corpus/http"'
fuzz_replay_http_CFLAGS = $(FUZZ_CFLAGS)
fuzz_replay_http_LDADD = $(FUZZ_PROTO_LDADD)

fuzz_replay_token_SOURCES = fuzz/replay.c fuzz/fuzz_token.c fuzz/fuzz_common.h
fuzz_replay_token_CPPFLAGS = $(FUZZ_CPPFLAGS) -DMCPGW_FUZZ_CORPUS='"$(abs_top_srcdir)/fuzz/corpus/token"'
fuzz_replay_token_CFLAGS = $(FUZZ_CFLAGS)
fuzz_replay_token_LDADD = $(FUZZ_JWT_LDADD)

fuzz_replay_dispatch_SOURCES = fuzz/replay.c fuzz/fuzz_dispatch.c fuzz/fuzz_common.h
fuzz_replay_dispatch_CPPFLAGS = $(FUZZ_CPPFLAGS) -DMCPGW_FUZZ_CORPUS='"$(abs_top_srcdir)/fuzz/corpus/dispatch"'
fuzz_replay_dispatch_CFLAGS = $(FUZZ_CFLAGS)
fuzz_replay_dispatch_LDADD = $(FUZZ_LDADD)
EXTRA_fuzz_replay_dispatch_DEPENDENCIES = $(FUZZ_PLUGIN_DEPS)

fuzz_replay_pmd_SOURCES = fuzz/replay.c fuzz/fuzz_pmd.c fuzz/fuzz_common.h
fuzz_replay_pmd_CPPFLAGS = $(FUZZ_CPPFLAGS) -DMCPGW_FUZZ_CORPUS='"$(abs_top_srcdir)/fuzz/corpus/pmd"'
fuzz_replay_pmd_CFLAGS = $(FUZZ_CFLAGS)
fuzz_replay_pmd_LDADD = $(FUZZ_PROTO_LDADD)

fuzz_replay_json_SOURCES = fuzz/replay.c fuzz/fuzz_json.c fuzz/fuzz_common.h
fuzz_replay_json_CPPFLAGS = $(FUZZ_CPPFLAGS) -DMCPGW_FUZZ_CORPUS='"$(abs_top_srcdir)/fuzz/corpus/json"'
fuzz_replay_json_CFLAGS = $(FUZZ_CFLAGS)
fuzz_replay_json_LDADD = $(FUZZ_PROTO_LDADD)

fuzz_replay_json_view_SOURCES = fuzz/replay.c fuzz/fuzz_json_view.c fuzz/fuzz_common.h
fuzz_replay_json_view_CPPFLAGS = $(FUZZ_CPPFLAGS) -DMCPGW_FUZZ_CORPUS='"$(abs_top_srcdir)/fuzz/corpus/json_view"'
fuzz_replay_json_view_CFLAGS = $(FUZZ_CFLAGS)
fuzz_replay_json_view_LDADD = $(FUZZ_LDADD)

fuzz_replay_ws_msg_SOURCES = fuzz/replay.c fuzz/fuzz_ws_msg.c fuzz/fuzz_common.h
fuzz_replay_ws_msg_CPPFLAGS = $(FUZZ_CPPFLAGS) -DMCPGW_FUZZ_CORPUS='"$(abs_top_srcdir)/fuzz/corpus/ws_msg"'
fuzz_replay_ws_msg_CFLAGS = $(FUZZ_CFLAGS)
fuzz_replay_ws_msg_LDADD = $(FUZZ_PROTO_LDADD)

# ------------------------------------------------------------ libFuzzer targets
if FUZZING
FUZZ_PROGS = fuzz/fuzz_ws_frame fuzz/fuzz_http fuzz/fuzz_token fuzz/fuzz_dispatch fuzz/fuzz_pmd \
	fuzz/fuzz_json fuzz/fuzz_json_view fuzz/fuzz_ws_msg
noinst_PROGRAMS += $(FUZZ_PROGS)

fuzz_fuzz_ws_frame_SOURCES = fuzz/fuzz_ws_frame.c fuzz/fuzz_common.h
fuzz_fuzz_ws_frame_CPPFLAGS = $(FUZZ_CPPFLAGS)
fuzz_fuzz_ws_frame_CFLAGS = $(FUZZ_CFLAGS)
fuzz_fuzz_ws_frame_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LDFLAGS)
fuzz_fuzz_ws_frame_LDADD = $(FUZZ_PROTO_LDADD)

fuzz_fuzz_http_SOURCES = fuzz/fuzz_http.c fuzz/fuzz_common.h
fuzz_fuzz_http_CPPFLAGS = $(FUZZ_CPPFLAGS)
fuzz_fuzz_http_CFLAGS = $(FUZZ_CFLAGS)
fuzz_fuzz_http_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LDFLAGS)
fuzz_fuzz_http_LDADD = $(FUZZ_PROTO_LDADD)

fuzz_fuzz_token_SOURCES = fuzz/fuzz_token.c fuzz/fuzz_common.h
fuzz_fuzz_token_CPPFLAGS = $(FUZZ_CPPFLAGS)
fuzz_fuzz_token_CFLAGS = $(FUZZ_CFLAGS)
fuzz_fuzz_token_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LDFLAGS)
fuzz_fuzz_token_LDADD = $(FUZZ_JWT_LDADD)

fuzz_fuzz_dispatch_SOURCES = fuzz/fuzz_dispatch.c fuzz/fuzz_common.h
fuzz_fuzz_dispatch_CPPFLAGS = $(FUZZ_CPPFLAGS)
fuzz_fuzz_dispatch_CFLAGS = $(FUZZ_CFLAGS)
fuzz_fuzz_dispatch_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LDFLAGS)
fuzz_fuzz_dispatch_LDADD = $(FUZZ_LDADD)
EXTRA_fuzz_fuzz_dispatch_DEPENDENCIES = $(FUZZ_PLUGIN_DEPS)

fuzz_fuzz_pmd_SOURCES = fuzz/fuzz_pmd.c fuzz/fuzz_common.h
fuzz_fuzz_pmd_CPPFLAGS = $(FUZZ_CPPFLAGS)
fuzz_fuzz_pmd_CFLAGS = $(FUZZ_CFLAGS)
fuzz_fuzz_pmd_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LDFLAGS)
fuzz_fuzz_pmd_LDADD = $(FUZZ_PROTO_LDADD)

fuzz_fuzz_json_SOURCES = fuzz/fuzz_json.c fuzz/fuzz_common.h
fuzz_fuzz_json_CPPFLAGS = $(FUZZ_CPPFLAGS)
fuzz_fuzz_json_CFLAGS = $(FUZZ_CFLAGS)
fuzz_fuzz_json_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LDFLAGS)
fuzz_fuzz_json_LDADD = $(FUZZ_PROTO_LDADD)

fuzz_fuzz_json_view_SOURCES = fuzz/fuzz_json_view.c fuzz/fuzz_common.h
fuzz_fuzz_json_view_CPPFLAGS = $(FUZZ_CPPFLAGS)
fuzz_fuzz_json_view_CFLAGS = $(FUZZ_CFLAGS)
fuzz_fuzz_json_view_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LDFLAGS)
fuzz_fuzz_json_view_LDADD = $(FUZZ_LDADD)

fuzz_fuzz_ws_msg_SOURCES = fuzz/fuzz_ws_msg.c fuzz/fuzz_common.h
fuzz_fuzz_ws_msg_CPPFLAGS = $(FUZZ_CPPFLAGS)
fuzz_fuzz_ws_msg_CFLAGS = $(FUZZ_CFLAGS)
fuzz_fuzz_ws_msg_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LDFLAGS)
fuzz_fuzz_ws_msg_LDADD = $(FUZZ_PROTO_LDADD)

FUZZ_SECONDS = 60
FUZZ_TARGETS = $(FUZZ_NAMES)
# Runs each of FUZZ_TARGETS (default all: make fuzz FUZZ_TARGETS="http token")
# for FUZZ_SECONDS;
# new inputs go to fuzz/work/TARGET, crashes to fuzz/artifacts/TARGET/.
fuzz: $(FUZZ_PROGS) $(FUZZ_PLUGIN_DEPS)
	@FUZZ_SECONDS='$(FUZZ_SECONDS)' $(SHELL) $(srcdir)/fuzz/run.sh \
		'$(abs_top_builddir)' '$(abs_top_srcdir)' $(FUZZ_TARGETS)
else
fuzz:
	@echo "make fuzz: this tree is not configured for fuzzing;" \
	      "run ./configure CC=clang --enable-fuzzing (or scripts/fuzz)" >&2; exit 1
endif
.PHONY: fuzz

clean-local: clean-fuzz
clean-fuzz:
	-rm -rf fuzz/work fuzz/artifacts
.PHONY: clean-fuzz
