# splitpool build: one non-recursive Makefile, objects out of tree in build/, binaries in bin/.
#   make                 build everything (installs missing Debian packages first)
#   make check           unit tests, fuzzers (FUZZ_SECONDS each), then integration tests against PostgreSQL
#   make fuzz            builds the libFuzzer targets with clang (ASan+UBSan) and runs each for FUZZ_SECONDS
#   make demo            primary + 2 replicas on loopback with splitpool in front (make demo-stop)
#   make install PREFIX=/usr/local
# V=1 shows full commands; WERROR=1 (set by CI) turns warnings into errors.

CXX      ?= g++
PREFIX   ?= /usr/local
BUILD    := build
BIN      := bin
PYTHON   ?= /usr/bin/python3

VERSION  := 0.1.0
CXXFLAGS := -std=c++20 -O2 -g -Wall -Wextra -Wno-missing-field-initializers -MMD -MP -I. \
            -DTOML_HEADER_ONLY=0 -DTOML_SHARED_LIB=1 -DSPLITPOOL_VERSION=\"$(VERSION)\"
ifeq ($(WERROR),1)
CXXFLAGS += -Werror
endif
# SANITIZE=1: everything built with AddressSanitizer and UBSan into build/san and bin/san; `make
# check SANITIZE=1` runs the unit tests and the integration tests against those binaries.
ifeq ($(SANITIZE),1)
BUILD    := build/san
BIN      := bin/san
CXXFLAGS += -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
SAN_LDFLAGS := -fsanitize=address,undefined
endif
# Symbols bound at start (full RELRO): the parent resolves them once and its 1000 children share
# the read-only tables; lazily, each child wrote its own copy of them on its first calls (a page
# fault and the resolver per symbol: 60 -> 44 faults, ~0.7 ms less CPU per child started).
BIND_NOW := -Wl,-z,now -Wl,-z,relro
LDLIBS   := $(SAN_LDFLAGS) $(BIND_NOW) -lev -lssl -lcrypto -lpg_query -ltomlplusplus -lrt -lpthread

ifeq ($(V),1)
Q :=
else
Q := @
endif

# Everything but the programs' main files goes into one internal library that the
# daemon, the tools and the unit tests all link, so each wire format has one implementation.
LIB_SRCS := \
	daemon/log.cpp \
	daemon/log_collector.cpp \
	daemon/service_notify.cpp \
	daemon/config.cpp \
	daemon/config_keys.cpp \
	daemon/config_reference.cpp \
	daemon/cli.cpp \
	daemon/pidfile.cpp \
	daemon/listener.cpp \
	daemon/supervisor.cpp \
	daemon/child.cpp \
	daemon/auth_state.cpp \
	daemon/secure_random.cpp \
	daemon/session.cpp \
	daemon/relay.cpp \
	daemon/dispatcher.cpp \
	daemon/dispatcher_failure.cpp \
	daemon/admin_sql.cpp \
	daemon/metrics.cpp \
	daemon/router.cpp \
	daemon/session_model.cpp \
	daemon/health.cpp \
	daemon/sr_check.cpp \
	daemon/primary_vote.cpp \
	daemon/hook.cpp \
	daemon/node_status_file.cpp \
	daemon/balancer.cpp \
	daemon/backend.cpp \
	daemon/backend_pool.cpp \
	daemon/cancel.cpp \
	daemon/catalog_cache.cpp \
	daemon/client_auth.cpp \
	daemon/io/buffer.cpp \
	daemon/io/conn.cpp \
	daemon/io/tls.cpp \
	daemon/proto/frame.cpp \
	daemon/proto/writer.cpp \
	daemon/proto/startup.cpp \
	daemon/auth/base64.cpp \
	daemon/auth/md5.cpp \
	daemon/auth/scram_client.cpp \
	daemon/auth/scram_server.cpp \
	daemon/auth/hba.cpp \
	daemon/auth/pool_passwd.cpp \
	daemon/auth/aes.cpp \
	tools/passwd_tool.cpp \
	tools/pgpool_conf.cpp \
	tools/pgpool_params.cpp \
	tools/pgpool_import.cpp \
	shm/segment.cpp \
	shm/status_table.cpp \
	parser/classify.cpp \
	parser/tree_walk.cpp \
	parser/cache_key.cpp \
	parser/classify_cache.cpp \
	pcp/wire.cpp \
	pcp/pcp_conf.cpp \
	pcp/commands.cpp \
	pcp/report.cpp \
	pcp/server.cpp \
	pcp/client.cpp \
	pcp/tools/cli_common.cpp

DAEMON_MAIN := daemon/main.cpp

UNIT_SRCS := \
	test/unit/test_main.cpp \
	test/unit/config_test.cpp \
	test/unit/frame_test.cpp \
	test/unit/writer_test.cpp \
	test/unit/startup_test.cpp \
	test/unit/auth_test.cpp \
	test/unit/status_table_test.cpp \
	test/unit/cli_test.cpp \
	test/unit/classify_test.cpp \
	test/unit/cache_key_test.cpp \
	test/unit/router_test.cpp \
	test/unit/balancer_test.cpp \
	test/unit/dispatcher_test.cpp \
	test/unit/pcp_wire_test.cpp \
	test/unit/pcp_conf_test.cpp \
	test/unit/admin_sql_test.cpp \
	test/unit/metrics_test.cpp \
	test/unit/hba_test.cpp \
	test/unit/pool_passwd_test.cpp \
	test/unit/scram_server_test.cpp \
	test/unit/tls_test.cpp \
	test/unit/logging_test.cpp \
	test/unit/pgpool_import_test.cpp \
	test/unit/config_reference_test.cpp \
	test/unit/failover_test.cpp

LIB_OBJS  := $(LIB_SRCS:%.cpp=$(BUILD)/%.o)
UNIT_OBJS := $(UNIT_SRCS:%.cpp=$(BUILD)/%.o)
MAIN_OBJS := $(DAEMON_MAIN:%.cpp=$(BUILD)/%.o)
LIB       := $(BUILD)/libsplitpool.a
DEPS      := $(LIB_OBJS:.o=.d) $(UNIT_OBJS:.o=.d) $(MAIN_OBJS:.o=.d) $(TOOL_OBJS:.o=.d)

PCP_TOOLS := pcp_node_count pcp_node_info pcp_health_check_stats pcp_pool_status pcp_proc_count \
             pcp_proc_info pcp_attach_node pcp_detach_node pcp_promote_node pcp_reload_config pcp_stop_pgpool \
             pcp_log_rotate
PASSWD_TOOLS := pg_enc pg_md5
TOOL_OBJS := $(PCP_TOOLS:%=$(BUILD)/pcp/tools/%.o) $(PASSWD_TOOLS:%=$(BUILD)/tools/%.o)
PROGRAMS  := $(BIN)/splitpool $(PCP_TOOLS:%=$(BIN)/%) $(PASSWD_TOOLS:%=$(BIN)/%)
UNIT_BIN  := $(BUILD)/unit_tests

# ---- Fuzzing (make fuzz, and a bounded run inside make check) --------------------------------
# libFuzzer targets in test/fuzz/<name>_fuzz.cpp, built with clang, AddressSanitizer and UBSan. The
# library sources are compiled a second time into build/fuzz/ (instrumented for coverage, never with
# -Werror: clang warns where g++ does not, and those files belong to the daemon); the targets
# themselves honour WERROR=1. scripts/fuzz.sh runs each binary on a copy of test/fuzz/corpus/<name>.
FUZZ_CXX      ?= clang++
FUZZ_SECONDS  ?= 20
FUZZ_TARGETS  := startup frame scram hba pool_passwd pcp_conf pcp_request config pgpool_conf
FUZZ_BUILD    := $(BUILD)/fuzz
FUZZ_BIN      := $(BIN)/fuzz
FUZZ_SAN      := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CXXFLAGS := $(filter-out -O2 -Werror,$(CXXFLAGS)) -O1 $(FUZZ_SAN) -fsanitize=fuzzer-no-link
FUZZ_LIB_OBJS := $(LIB_SRCS:%.cpp=$(FUZZ_BUILD)/%.o)
FUZZ_LIB      := $(FUZZ_BUILD)/libsplitpool.a
FUZZ_OBJS     := $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/test/fuzz/%_fuzz.o)
FUZZ_BINS     := $(FUZZ_TARGETS:%=$(FUZZ_BIN)/%)
DEPS          += $(FUZZ_LIB_OBJS:.o=.d) $(FUZZ_OBJS:.o=.d)

.PHONY: all deps check unit integration demo demo-stop bench install clean fuzz fuzz-build fuzz-check docs

all: deps $(PROGRAMS)

# Installs only what is missing; fast on a ready machine.
deps:
	$(Q)scripts/install-deps.sh

# Order-only on deps: with -j, packages (headers) must be installed before anything compiles.
$(BUILD)/%.o: %.cpp | deps
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CXX $<")
	$(Q)$(CXX) $(CXXFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJS)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BIN)/splitpool: $(MAIN_OBJS) $(LIB)
	@mkdir -p $(BIN)
	$(Q)$(CXX) -o $@ $^ $(LDLIBS)

$(BIN)/pcp_%: $(BUILD)/pcp/tools/pcp_%.o $(LIB)
	@mkdir -p $(BIN)
	$(Q)$(CXX) -o $@ $^ $(LDLIBS)

$(BIN)/pg_%: $(BUILD)/tools/pg_%.o $(LIB)
	@mkdir -p $(BIN)
	$(Q)$(CXX) -o $@ $^ $(LDLIBS)

$(UNIT_BIN): $(UNIT_OBJS) $(LIB)
	$(Q)$(CXX) -o $@ $^ $(LDLIBS)

unit: deps $(UNIT_BIN)
	$(Q)$(UNIT_BIN)

integration: all
	$(Q)scripts/run-integration.sh

# With SANITIZE=1 the fuzz step is left out (the fuzzers are sanitized builds of their own) and the
# integration tests run the sanitized daemon; leak reports of forked processes are left out.
ifeq ($(SANITIZE),1)
CHECK_FUZZ :=
INTEGRATION_ENV := SPLITPOOL_BIN=$(CURDIR)/$(BIN)/splitpool ASAN_OPTIONS=detect_leaks=0:abort_on_error=1
else
CHECK_FUZZ := $(FUZZ_BINS)
INTEGRATION_ENV :=
endif

check: deps $(PROGRAMS) $(UNIT_BIN) $(CHECK_FUZZ)
	$(Q)$(UNIT_BIN)
	$(if $(CHECK_FUZZ),$(Q)FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh $(FUZZ_TARGETS))
	$(Q)$(INTEGRATION_ENV) scripts/run-integration.sh

demo: all
	$(Q)scripts/demo.sh start

demo-stop:
	$(Q)scripts/demo.sh stop

bench: all
	$(Q)scripts/bench.sh

# docs/configuration.md is generated from the key table; a unit test fails when it is out of date.
docs: $(BIN)/splitpool
	$(Q)mkdir -p docs && $(BIN)/splitpool --config-reference > docs/configuration.md

# Binaries into $(PREFIX)/bin; samples into $(PREFIX)/etc/splitpool (splitpool.toml only when there
# is none: a DBA's file is never overwritten); the systemd unit, with its paths set for PREFIX, into
# $(SYSTEMD_UNIT_DIR). DESTDIR is honoured for packaging.
SYSTEMD_UNIT_DIR ?= $(PREFIX)/lib/systemd/system
SYSCONF := $(DESTDIR)$(PREFIX)/etc/splitpool

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(SYSCONF) $(DESTDIR)$(SYSTEMD_UNIT_DIR)
	install -m 755 $(PROGRAMS) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 etc/splitpool.toml $(SYSCONF)/splitpool.toml.sample
	install -m 644 etc/splitpool-minimal.toml $(SYSCONF)/splitpool-minimal.toml.sample
	install -m 644 etc/pcp.conf.sample etc/pool_hba.conf.sample etc/splitpool.logrotate.sample $(SYSCONF)/
	test -e $(SYSCONF)/splitpool.toml || install -m 644 etc/splitpool.toml $(SYSCONF)/splitpool.toml
	sed 's|/usr/local/|$(PREFIX)/|g' etc/splitpool.service >$(DESTDIR)$(SYSTEMD_UNIT_DIR)/splitpool.service
	chmod 644 $(DESTDIR)$(SYSTEMD_UNIT_DIR)/splitpool.service

# ---- Fuzzing: rules (variables above, next to the other object lists)
$(FUZZ_BUILD)/test/fuzz/%.o: test/fuzz/%.cpp | deps
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZ-CXX $<")
	$(Q)$(FUZZ_CXX) $(FUZZ_CXXFLAGS) $(if $(filter 1,$(WERROR)),-Werror) -c $< -o $@

$(FUZZ_BUILD)/%.o: %.cpp | deps
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZ-CXX $<")
	$(Q)$(FUZZ_CXX) $(FUZZ_CXXFLAGS) -c $< -o $@

$(FUZZ_LIB): $(FUZZ_LIB_OBJS)
	$(Q)rm -f $@ && ar rcs $@ $^

$(FUZZ_BIN)/%: $(FUZZ_BUILD)/test/fuzz/%_fuzz.o $(FUZZ_LIB)
	@mkdir -p $(FUZZ_BIN)
	@$(if $(Q),echo "  FUZZ-LD $@")
	$(Q)$(FUZZ_CXX) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

fuzz-build: deps $(FUZZ_BINS)

# FUZZ_SECONDS=600 for a longer run; FUZZ_MERGE=1 keeps the new inputs in test/fuzz/corpus/.
fuzz: fuzz-build
	$(Q)FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh $(FUZZ_TARGETS)

fuzz-check: fuzz

.SECONDARY: $(FUZZ_OBJS)

clean:
	rm -rf $(BUILD) $(BIN)

.SECONDARY: $(TOOL_OBJS)

-include $(DEPS)
