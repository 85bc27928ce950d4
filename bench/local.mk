# bench/local.mk - included by the top-level Makefile.am (non-recursive build).
# Owns the benchmark: mcpgw-bench (load generator and raw TCP echo ceiling),
# the Node ws peer (bench/peers), the bench configuration, bench/run, the
# A/B scripts (bench/ab, bench/workers, bench/cluster, bench/wss) and bench/takeover-broadcast.
# mcpgw-bench's TLS client (--tls, wss://) links OpenSSL's libssl through
# $(OPENSSL_LIBS), as the core. Frames, permessage-deflate and token
# minting come from libmcpgw-proto (see Makefile.am).
noinst_PROGRAMS += bench/mcpgw-bench
bench_mcpgw_bench_SOURCES = bench/mcpgw-bench.c
bench_mcpgw_bench_CFLAGS = $(AM_CFLAGS) $(OPENSSL_CFLAGS) $(LIBJWT_CFLAGS) -pthread
bench_mcpgw_bench_CFLAGS += $(ZLIB_CFLAGS)
bench_mcpgw_bench_LDADD = $(PROTO_JWT_LIBS) $(OPENSSL_LIBS) $(ZLIB_LIBS) $(LIBJWT_LIBS) \
	$(JANSSON_LIBS) -lpthread

EXTRA_DIST += bench/run bench/ab bench/workers bench/cluster bench/wss bench/mcp bench/mcp-instructions \
	bench/takeover-broadcast bench/lib.sh bench/es256-token \
	bench/plot.gp bench/report.py bench/conf.d \
	bench/peers/package.json bench/peers/server.js bench/peers/.gitignore \
	BENCHMARKS.md
