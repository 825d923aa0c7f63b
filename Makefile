# kiln: `make` builds every program into build/, `make check` runs every
# test, `make guest` builds the guest kernel and initramfs, `make demo` boots
# a microVM and shows its console. See README.md.

VERSION := $(shell cat VERSION)
B := build

CC ?= cc
CFLAGS ?= -O2 -g
WARN := -Wall -Wextra -Werror -Wshadow
# -Wunused-parameter stays on for the VMM core, its devices and lib/ (an
# unused parameter there is a mistake or an ops callback that says so with
# (void)p). Where nearly every function is a callback of a fixed
# signature it is off: the API's route handlers (id, body, resp), the
# agent's ttrpc handlers (ctx, in), and the tests' and fuzzers' stub
# callbacks. Measured: those account for 113 of the 121 unused
# parameters; none of them was a mistake.
NO_UNUSED_PARAM_DIRS := vmm/api/ agent/ test/
unused_param = $(if $(filter $(addsuffix %,$(NO_UNUSED_PARAM_DIRS)),$(1)),-Wno-unused-parameter)
BASE_CFLAGS := -std=gnu11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 \
	-DKILN_VERSION='"$(VERSION)"' $(WARN) -MMD -MP \
	-fstack-protector-strong -D_FORTIFY_SOURCE=2
SAN_CFLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
	-fno-sanitize-recover=undefined
# ThreadSanitizer cannot share a binary with ASan: a second build of the
# unit tests (build/tsan). TSan does not model fences (gcc warns with
# -Wtsan); ours order guest memory against the guest, not host threads.
TSAN_CFLAGS := -O1 -g -fsanitize=thread -fno-omit-frame-pointer \
	$(shell $(CC) -Werror -Wno-tsan -E -x c /dev/null >/dev/null 2>&1 && \
		echo -Wno-tsan)
# kiln-vmm is static: no dynamic loader at start (1.7 ms of CPU against
# 3.0 ms dynamic, measured with --version), and nothing to find in /lib
# once it runs jailed. A static PIE: its addresses differ each run (ASLR
# against a guest that escapes into it), and the unwinder its crash
# report warms up finds frames through .eh_frame_hdr instead of sorting
# all 11,925 FDEs at every start. Start to exit of `--rebase-snap`
# (main's first branch): 5.1 ms -> 3.3 ms natively, 43-48 ms -> 26 ms in
# the test bed. The price: its 18,685 relocated pointers are written at
# start, so an idle kiln-vmm has about 180 KiB more anonymous memory
# (312 -> 492 KiB, API only) in pages a non-PIE binary shares.
LDLIBS_VMM := -static-pie -lyajl_s -lhttp_parser -lcrypto -lseccomp -lcap -lpthread
# kiln and the shim run once or more per container (containerd's runc
# shim runs kiln for create, start, delete...) and are static PIEs, as
# kiln-vmm: no dynamic loader at start. kiln --version in the test bed:
# 44 -> 21 ms (natively 1.7 -> 1.1 ms of CPU, 72 -> 38 page faults); the
# shim 6.3 -> 2.5 ms natively. Their netlink is raw (lib/nl.c), as the
# agent's: Debian ships libmnl without an archive, and one shared library
# would keep the loader.
LDLIBS_KILN := -static-pie -lyajl_s -lnettle -lprotobuf-c -lpthread
LDLIBS_SHIM := -static-pie -lyajl_s -lnettle -lcrypto -lprotobuf-c -lpthread
# the agent is guest code: one static binary, no libc surprises
LDLIBS_AGENT := -static -lprotobuf-c -lcap -lseccomp -lpthread
LDLIBS_TEST := -lyajl -lhttp_parser -lprotobuf-c -lcap -lseccomp -lcrypto -lnettle -lpthread

# protobuf-c code generated from our .proto files, under build/gen
GEN := $(B)/gen
PROTOS := lib/ttrpc.proto agent/proto/agent.proto
GEN_SRCS := $(PROTOS:%.proto=$(GEN)/%.pb-c.c)
GEN_HDRS := $(PROTOS:%.proto=$(GEN)/%.pb-c.h)
BASE_CFLAGS += -I$(GEN)

# containerd's own .proto files as Debian installs them (the shim's Task
# API and events; golang-github-containerd-containerd-dev, gogo's and
# protobuf's own), compiled into build/gen-ctrd, never copied into the tree
CTRD_GEN := $(B)/gen-ctrd
GOSRC := /usr/share/gocode/src
CTRD := github.com/containerd/containerd
CTRD_PROTOS := $(CTRD)/runtime/v2/task/shim.proto $(CTRD)/api/types/mount.proto \
	$(CTRD)/api/types/task/task.proto $(CTRD)/api/events/task.proto \
	$(CTRD)/api/services/ttrpc/events/v1/events.proto \
	$(CTRD)/protobuf/plugin/fieldpath.proto gogoproto/gogo.proto \
	github.com/containerd/cgroups/v2/stats/metrics.proto \
	google/protobuf/any.proto google/protobuf/empty.proto \
	google/protobuf/timestamp.proto google/protobuf/descriptor.proto
CTRD_SRCS := $(CTRD_PROTOS:%.proto=$(CTRD_GEN)/%.pb-c.c)
CTRD_STAMP := $(CTRD_GEN)/.stamp
BASE_CFLAGS += -I$(CTRD_GEN)

# ttrpc and the agent client are lib/ code, but kiln-vmm does not link them
RPC_SRCS := $(wildcard lib/ttrpc*.c) $(GEN_SRCS)
CLIENT_SRCS := $(wildcard lib/agent_client.c)
# JSON reading needs yajl, which the static agent does not link
JSON_SRCS := lib/json.c
# rtnetlink, for the host's side (the agent's is agent/net.c)
NL_SRCS := $(wildcard lib/nl*.c)
LIB_SRCS := $(filter-out $(RPC_SRCS) $(CLIENT_SRCS) $(JSON_SRCS) $(NL_SRCS),$(wildcard lib/*.c))
# config.json and state.json: the runtime and the shim
OCI_SRCS := $(wildcard oci/*.c)
RUNTIME_SRCS := $(wildcard runtime/*.c)
RUNTIME_LIB_SRCS := $(filter-out runtime/main.c,$(RUNTIME_SRCS))
VMM_SRCS := $(wildcard vmm/*.c vmm/hw/*.c vmm/virtio/*.c vmm/api/*.c)
VMM_LIB_SRCS := $(filter-out vmm/main.c,$(VMM_SRCS))
AGENT_SRCS := $(wildcard agent/*.c)
AGENT_LIB_SRCS := $(filter-out agent/main.c,$(AGENT_SRCS))
UNIT_SRCS := $(wildcard test/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:test/unit/%.c=$(B)/test/%)

obj = $(1:%.c=$(B)/obj/%.o)
san = $(1:%.c=$(B)/san/%.o)
tsan = $(1:%.c=$(B)/tsan/%.o)

SHIM_SRCS := $(wildcard shim/*.c)
SHIM_LIB_SRCS := $(filter-out shim/main.c,$(SHIM_SRCS))

PROGS := $(B)/kiln-vmm $(B)/kiln $(B)/containerd-shim-kiln-v2 $(if $(wildcard agent/main.c),$(B)/kiln-agent) \
	$(if $(wildcard test/tools/agentctl.c),$(B)/kiln-agentctl)
# static measuring tools of the benches (they run in busybox-static rootfs too)
BENCH_TOOLS := $(patsubst test/bench/%.c,$(B)/bench/%,$(wildcard test/bench/*.c))

.PHONY: all guest check check-unit check-tsan check-format check-fuzz \
	check-integration bench demo deps format clean install

all: $(PROGS) $(BENCH_TOOLS) $(B)/kiln-vmm-selftest

# V=1 shows whole command lines
Q := $(if $(V),,@)

$(GEN)/%.pb-c.c $(GEN)/%.pb-c.h: %.proto
	@mkdir -p $(GEN)
	@$(if $(Q),echo "  PROTOC  $<")
	$(Q)protoc-c --c_out=$(GEN) -I. $<

$(CTRD_SRCS): $(CTRD_STAMP)
$(CTRD_STAMP):
	@mkdir -p $(CTRD_GEN)
	@$(if $(Q),echo "  PROTOC  containerd's task API and events")
	$(Q)protoc-c --c_out=$(CTRD_GEN) -I$(GOSRC) -I$(GOSRC)/github.com/gogo/protobuf \
		-I/usr/include $(CTRD_PROTOS) 2>$(CTRD_GEN)/protoc.log || \
		{ cat $(CTRD_GEN)/protoc.log; exit 1; }
	@touch $@

# every object may include a generated header: generate them first
$(B)/obj/%.o: %.c | $(GEN_HDRS) $(CTRD_STAMP)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(BASE_CFLAGS) $(call unused_param,$<) $(CFLAGS) -c -o $@ $<

$(B)/san/%.o: %.c | $(GEN_HDRS) $(CTRD_STAMP)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC-SAN  $<")
	$(Q)$(CC) $(BASE_CFLAGS) $(call unused_param,$<) $(SAN_CFLAGS) -U_FORTIFY_SOURCE -c -o $@ $<

$(B)/tsan/%.o: %.c | $(GEN_HDRS) $(CTRD_STAMP)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC-TSAN $<")
	$(Q)$(CC) $(BASE_CFLAGS) $(call unused_param,$<) $(TSAN_CFLAGS) -U_FORTIFY_SOURCE -c -o $@ $<

# kiln-vmm's seccomp filters as BPF, generated once per build by a tool
# that links the same rules and libseccomp (vmm/seccomp.h: lockdown then
# loads them instead of generating them at each start)
SECCOMP_BPF := $(GEN)/vmm_seccomp_bpf.c
$(B)/seccomp-gen: $(call obj,vmm/gen/seccomp_gen.c $(VMM_LIB_SRCS) $(LIB_SRCS) $(JSON_SRCS))
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS_VMM)
$(SECCOMP_BPF): $(B)/seccomp-gen
	@$(if $(Q),echo "  GEN     $@")
	$(Q)$< $(CURDIR)/vmm/seccomp.h $@.tmp && mv $@.tmp $@

$(B)/kiln-vmm: $(call obj,$(VMM_SRCS) $(LIB_SRCS) $(JSON_SRCS) $(SECCOMP_BPF))
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS_VMM)

# kiln-vmm whose threads obey KILN_VMM_SECCOMP_SELFTEST=api|vcpu|vmm (one
# forbidden syscall after their filter), for the integration tests only
$(B)/obj/vmm/seccomp-selftest.o: vmm/seccomp.c | $(GEN_HDRS) $(CTRD_STAMP)
	@$(if $(Q),echo "  CC      $< (selftest)")
	$(Q)$(CC) $(BASE_CFLAGS) -DKILN_SECCOMP_SELFTEST $(CFLAGS) -c -o $@ $<
$(B)/kiln-vmm-selftest: $(call obj,$(filter-out vmm/seccomp.c,$(VMM_SRCS)) \
		$(LIB_SRCS) $(JSON_SRCS) $(SECCOMP_BPF)) $(B)/obj/vmm/seccomp-selftest.o
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS_VMM)

# the OCI runtime CLI
$(B)/kiln: $(call obj,$(RUNTIME_SRCS) $(OCI_SRCS) $(JSON_SRCS) $(LIB_SRCS) \
		$(CLIENT_SRCS) $(RPC_SRCS) $(NL_SRCS))
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS_KILN)

# containerd's runtime v2 shim
$(B)/containerd-shim-kiln-v2: $(call obj,$(SHIM_SRCS) $(CTRD_SRCS) $(OCI_SRCS) \
		$(JSON_SRCS) $(LIB_SRCS) $(RPC_SRCS) $(CLIENT_SRCS))
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS_SHIM)

$(B)/kiln-agent: $(call obj,$(AGENT_SRCS) $(RPC_SRCS) $(LIB_SRCS))
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS_AGENT)

# the host side of the agent as a command, for tests and benchmarks
$(B)/kiln-agentctl: $(call obj,test/tools/agentctl.c test/tools/agentctl_opts.c $(CLIENT_SRCS) $(RPC_SRCS) $(LIB_SRCS))
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) -o $@ $^ -lprotobuf-c -lpthread

# Unit tests link the same objects as the programs, sanitizer-built.
$(B)/test/%: $(B)/san/test/unit/%.o \
		$(call san,$(VMM_LIB_SRCS) $(LIB_SRCS) $(RPC_SRCS) $(CLIENT_SRCS) \
			$(AGENT_LIB_SRCS) $(JSON_SRCS) $(OCI_SRCS) $(RUNTIME_LIB_SRCS) $(NL_SRCS) \
			$(SHIM_LIB_SRCS) $(CTRD_SRCS) $(SECCOMP_BPF) $(wildcard test/lib/*.c))
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD-SAN  $@")
	$(Q)$(CC) $(SAN_CFLAGS) -o $@ $^ $(LDLIBS_TEST)

# The same tests, ThreadSanitizer-built (check-tsan runs TSAN_UNIT).
$(B)/tsan-test/%: $(B)/tsan/test/unit/%.o \
		$(call tsan,$(VMM_LIB_SRCS) $(LIB_SRCS) $(RPC_SRCS) $(CLIENT_SRCS) \
			$(AGENT_LIB_SRCS) $(JSON_SRCS) $(OCI_SRCS) $(RUNTIME_LIB_SRCS) $(NL_SRCS) \
			$(SHIM_LIB_SRCS) $(CTRD_SRCS) $(SECCOMP_BPF) $(wildcard test/lib/*.c))
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD-TSAN $@")
	$(Q)$(CC) $(TSAN_CFLAGS) -o $@ $^ $(LDLIBS_TEST)

$(B)/bench/%: test/bench/%.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) -static -O2 $(WARN) -D_GNU_SOURCE -o $@ $<

# ---- guest: kernel (cached outside the tree) and initramfs ---------------
GUEST := $(B)/guest
guest: $(GUEST)/vmlinux $(GUEST)/initramfs $(if $(filter %/kiln-agent,$(PROGS)),$(GUEST)/agent.cpio)

$(GUEST)/vmlinux $(GUEST)/bzImage: contrib/kernel/kiln-guest.config hack/build-guest-kernel.sh
	hack/build-guest-kernel.sh $(GUEST)

$(GUEST)/init: test/guest/init.c
	@mkdir -p $(dir $@)
	$(CC) -static -O2 -Wall -Wextra -Werror -o $@ $<

# Guest-side test scripts ride in the initramfs as /tests/NAME.sh; a test
# runs one with kiln.script=/tests/NAME.sh on the kernel command line.
# Static test tools (test/guest/tools/NAME.c) ride along as /tools/NAME.
GUEST_SCRIPTS := $(wildcard test/guest/scripts/*.sh)
GUEST_TOOLS := $(patsubst test/guest/tools/%.c,$(GUEST)/tools/%,$(wildcard test/guest/tools/*.c))
$(GUEST)/tools/%: test/guest/tools/%.c
	@mkdir -p $(dir $@)
	$(CC) -static -O2 -Wall -Wextra -Werror -o $@ $<

# the agent rides in the initramfs stripped (1.0 MB instead of 1.5 MB)
$(GUEST)/kiln-agent: $(B)/kiln-agent
	@mkdir -p $(dir $@)
	strip -o $@ $<

$(GUEST)/initramfs: $(GUEST)/init $(if $(filter %/kiln-agent,$(PROGS)),$(GUEST)/kiln-agent) hack/mkinitramfs.sh $(GUEST_SCRIPTS) $(GUEST_TOOLS)
	hack/mkinitramfs.sh $@ $(GUEST)/init \
		$(if $(filter %/kiln-agent,$(PROGS)),$(GUEST)/kiln-agent:/sbin/kiln-agent) \
		$(foreach f,$(GUEST_SCRIPTS),$(f):/tests/$(notdir $(f))) \
		$(foreach f,$(GUEST_TOOLS),$(f):/tools/$(notdir $(f)))

# The runtime's guests boot an initramfs of the agent alone (1.2 MB, not
# the 6.4 MB of busybox and test tools above): the kernel copies and
# unpacks all of it at every boot. Measured in the test bed, 6 kiln runs
# each, interleaved: boot to the agent's answer 4.4 s against 8.8 s.
$(GUEST)/agent.cpio: $(GUEST)/kiln-agent hack/mkinitramfs.sh
	BUSYBOX=none hack/mkinitramfs.sh $@ - $(GUEST)/kiln-agent:/sbin/kiln-agent

# ---- tests ----------------------------------------------------------------
deps:
	hack/install-deps.sh

check: deps
	$(MAKE) all guest $(UNIT_BINS)
	$(MAKE) check-format
	$(MAKE) check-unit
	$(MAKE) check-tsan
	$(MAKE) check-fuzz
	$(MAKE) check-integration

# ---- fuzz targets: libFuzzer + ASan/UBSan; `make check` replays corpora ---
# Each target lists its sources: a new device must not drag its
# dependencies into an unrelated fuzzer.
FUZZ_CFLAGS := -std=gnu11 -D_GNU_SOURCE -g -O1 \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined $(WARN) \
	-Wno-unused-parameter # one command line mixes harness stubs and devices
VIRTIO_CORE := vmm/virtio/queue.c vmm/virtio/iov.c vmm/virtio/virtio.c vmm/memory.c lib/error.c lib/log.c
FUZZ_SRCS_fuzz_virtq := $(VIRTIO_CORE)
FUZZ_SRCS_fuzz_virtio_mmio := $(VIRTIO_CORE) vmm/virtio/mmio.c vmm/virtio/rng.c \
	vmm/trap.c vmm/evloop.c vmm/metrics.c test/lib/vdriver.c
FUZZ_SRCS_fuzz_virtio_blk := $(VIRTIO_CORE) vmm/virtio/mmio.c vmm/virtio/blk.c vmm/virtio/blk_req.c \
	vmm/trap.c vmm/evloop.c vmm/metrics.c test/lib/vdriver.c
FUZZ_SRCS_fuzz_virtio_net := $(VIRTIO_CORE) vmm/virtio/mmio.c vmm/virtio/net.c vmm/virtio/net_ctrl.c \
	vmm/trap.c vmm/evloop.c vmm/metrics.c test/lib/vdriver.c
FUZZ_SRCS_fuzz_virtio_vsock := $(VIRTIO_CORE) vmm/virtio/mmio.c vmm/virtio/vsock.c \
	vmm/virtio/vsock_conn.c vmm/trap.c vmm/evloop.c vmm/metrics.c test/lib/vdriver.c
FUZZ_SRCS_fuzz_virtio_balloon := $(VIRTIO_CORE) vmm/virtio/mmio.c vmm/virtio/balloon.c \
	vmm/trap.c vmm/evloop.c vmm/metrics.c test/lib/vdriver.c
FUZZ_SRCS_fuzz_api := vmm/api/http.c $(wildcard vmm/api/routes*.c) vmm/config.c \
	vmm/config_json.c lib/json.c lib/error.c lib/log.c test/lib/api_fake.c
FUZZ_LIBS_fuzz_api := -lyajl -lhttp_parser
FUZZ_SRCS_fuzz_ttrpc := lib/ttrpc.c lib/ttrpc_client.c $(GEN_SRCS) lib/error.c lib/log.c
FUZZ_LIBS_fuzz_ttrpc := -lprotobuf-c
# sandbox_read_file comes from the fuzz file (it serves the input's files)
FUZZ_SRCS_fuzz_agent_spec := agent/spec.c agent/process.c agent/mount.c \
	agent/seccomp.c $(GEN)/agent/proto/agent.pb-c.c lib/error.c lib/log.c
FUZZ_LIBS_fuzz_agent_spec := -lprotobuf-c -lcap -lseccomp
FUZZ_SRCS_fuzz_loader := vmm/loader.c vmm/memory.c lib/error.c lib/log.c
FUZZ_SRCS_fuzz_nl_parse := lib/nl.c lib/nl_link.c lib/nl_addr.c lib/error.c
FUZZ_SRCS_fuzz_config := vmm/config.c vmm/config_json.c lib/json.c lib/error.c lib/log.c
FUZZ_LIBS_fuzz_config := -lyajl
FUZZ_SRCS_fuzz_snapshot := vmm/snapshot.c vmm/config.c vmm/config_json.c lib/json.c lib/error.c lib/log.c
FUZZ_LIBS_fuzz_snapshot := -lyajl
FUZZ_SRCS_fuzz_snapshot_seal := vmm/snapshot_seal.c lib/error.c lib/log.c lib/util.c
FUZZ_SRCS_fuzz_vhost_user := vmm/vhost_user.c lib/error.c lib/log.c lib/util.c
FUZZ_LIBS_fuzz_snapshot_seal := -lcrypto
# keep intermediate objects (san/, generated code) between runs
.PRECIOUS: $(B)/san/%.o $(B)/tsan/%.o $(B)/obj/%.o $(GEN)/%.pb-c.c $(GEN)/%.pb-c.h
FUZZ_BINS := $(patsubst test/fuzz/%.c,$(B)/fuzz/%,$(wildcard test/fuzz/fuzz_*.c))

.SECONDEXPANSION:
$(B)/fuzz/%: test/fuzz/%.c $$(FUZZ_SRCS_$$*) | $(GEN_HDRS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZ    $@")
	$(Q)clang $(FUZZ_CFLAGS) -I$(GEN) -o $@ $(filter %.c,$^) $(FUZZ_LIBS_$*) -lpthread

check-fuzz: $(FUZZ_BINS)
	@for t in $^; do \
		$$t -runs=0 test/fuzz/corpus/$$(basename $$t) >$(B)/fuzz/$$(basename $$t).log 2>&1 && \
		echo "fuzz replay ok: $$(basename $$t) ($$(ls test/fuzz/corpus/$$(basename $$t) | wc -l) inputs)" || \
		{ tail -n 30 $(B)/fuzz/$$(basename $$t).log; exit 1; }; \
	done

check-unit: $(UNIT_BINS)
	test/run-unit-selftest.sh
	test/run-unit.sh $(UNIT_BINS)

# Every unit test, ThreadSanitizer-built, for now; see TSAN_UNIT.
TSAN_UNIT := $(UNIT_SRCS:test/unit/%.c=%)
TSAN_BINS := $(TSAN_UNIT:%=$(B)/tsan-test/%)
check-tsan: $(TSAN_BINS)
	LABEL=tsan test/run-unit.sh $(TSAN_BINS)

FORMAT_SRCS = $(shell git ls-files '*.c' '*.h' 2>/dev/null)
check-format:
	@bad=0; for f in $(FORMAT_SRCS); do \
		clang-format --style=file $$f | cmp -s - $$f || { echo "not clang-formatted: $$f"; bad=1; }; \
	done; \
	if [ $$bad = 0 ]; then echo "check-format: ok"; else echo "run: make format"; exit 1; fi

format:
	clang-format --style=file -i $(FORMAT_SRCS)

# The integration suite runs in three test-bed sessions side by side,
# each with a group of tests that share what its bed warmed: kiln's
# network, jail, cgroup and fork tests; kiln's others; the container
# engines' and the agent's. Every other test is handed out to whichever
# bed is free, the longest first (test/integration/parallel.sh). CI=true
# goes along (unexpected skips fail there too); KILN_ALLOW_SKIP passes as
# KILN_*.
check-integration: all guest
	KILN_ALLOW_SKIP="$${KILN_ALLOW_SKIP:-} test_console_reader_stalls:*emulated*" \
	test/integration/parallel.sh '^test_kiln_(net|jail|cgroup|fork)_' '^test_kiln_' \
		'^test_(docker|podman|containerd|agent)_'


# kiln finds kiln-vmm beside itself and the guest in ../share/kiln
# (runtime/vmconf.c); DESTDIR for packaging.
PREFIX ?= /usr/local
install: all guest
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/kiln
	install -m 0755 $(B)/kiln $(B)/kiln-vmm $(B)/containerd-shim-kiln-v2 \
		$(DESTDIR)$(PREFIX)/bin/
	install -m 0644 $(GUEST)/vmlinux $(DESTDIR)$(PREFIX)/share/kiln/
	install -m 0644 $(GUEST)/agent.cpio $(DESTDIR)$(PREFIX)/share/kiln/initramfs

bench: all guest
	hack/testbed test/bench/boot
	hack/testbed test/bench/io
	test/bench/api
	test/bench/api --boot
	hack/testbed test/bench/agent
	test/bench/start

# One container in a microVM: kiln run of a busybox bundle (hack/demo.sh).
demo: deps
	$(MAKE) all guest
	hack/testbed hack/demo.sh

clean:
	rm -rf $(B)

-include $(shell find $(B) -name '*.d' 2>/dev/null)
