SHELL := /bin/bash
# sdlstm — build, test, install and demo. `make help` lists the targets.

# Install locations (GNU names); DESTDIR stages an install for packaging.
PREFIX     ?= /usr/local
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
VERSION  := $(shell awk '/^#define SDLSTM_VERSION_(MAJOR|MINOR|PATCH) /{v=v sep $$3; sep="."} END{print v}' include/sdlstm.h)
CC       ?= cc
CFLAGS   ?= -std=c11 -O2 -Wall -Wextra -pedantic
THREADS  ?= $(shell nproc 2>/dev/null || echo 1)

# The system packages the library needs (Debian names), and those only the tests need: h5dump, the
# PyTorch cross-check of checkpoints (tools/checkpoint_to_torch.py), CMake and g++ for the C++
# consumer, tools/plot.py's matplotlib, and MPI for the data-parallel example (the library itself
# never links MPI).
DEB_PACKAGES      := libopenblas-dev libhdf5-dev pkg-config
DEB_PLOT_PACKAGES := python3-matplotlib
DEB_TEST_PACKAGES := hdf5-tools python3-torch python3-h5py cmake g++ $(DEB_PLOT_PACKAGES) openmpi-bin libopenmpi-dev

LIB_SCRATCH := .build-lib
MAJOR       := $(firstword $(subst ., ,$(VERSION)))
SONAME      := libsdlstm.so.$(MAJOR)
LIB_REAL    := build/lib/libsdlstm.so.$(VERSION)
LIB         := build/lib/libsdlstm.so
LM          := build/bin/sdlstm-lm
NER         := build/bin/sdlstm-ner
NMT         := build/bin/sdlstm-nmt
LM_MPI      := build/bin/sdlstm-lm-mpi
# Open MPI refuses root unless told; --oversubscribe lets a machine with fewer cores than ranks run them.
MPIRUN      := $(if $(filter 0,$(shell id -u)),OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun --allow-run-as-root,mpirun) --oversubscribe

.PHONY: help deps lib examples examples-mpi test-mpi test test-swift test-abi test-install install uninstall demo bench clean deps-test test-checkpoints \
  test-kill sanitize test-apply test-plot plot fuzz test-fuzz

help:
	@echo "make demo     train a small PTB model with structured and with standard dropout"
	@echo "make test     build and run every test"
	@echo "make lib      build/lib/libsdlstm.so (no Swift runtime dependency)"
	@echo "make examples build/bin/sdlstm-lm, sdlstm-ner, sdlstm-nmt (PTB LM, CoNLL-2003 NER, Multi30k de-en translation)"
	@echo "make deps     apt-get install what is missing of $(DEB_PACKAGES) (root or sudo)"
	@echo "make install  [DESTDIR=] [PREFIX=/usr/local] [LIBDIR=PREFIX/lib] [INCLUDEDIR=PREFIX/include]:"
	@echo "              the stripped library with its SONAME links, sdlstm.h, sdlstm.pc, the CMake package"
	@echo "make uninstall  the same variables: removes every file make install wrote"
	@echo "make examples-mpi build/bin/sdlstm-lm-mpi (the PTB LM data-parallel over MPI; needs libopenmpi-dev)"
	@echo "make bench    kernel and training-step benchmarks (JSON lines), PyTorch beside them if installed"
	@echo "make sanitize the C examples and test drivers built with ASan + UBSan, each run briefly"
	@echo "make plot     docs/*.png from the JSON lines in docs/data (tools/plot.py, python3-matplotlib)"
	@echo "make fuzz     FUZZ_CASES (20000) mutated and crafted checkpoints through sdlstm_load, each in a child process"

# Installs only what is missing of the packages in $(1); needs root (or sudo) only when something is.
define install_missing
	@missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "sdlstm: installing missing system packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO=sudo; \
	  else echo "sdlstm: need root to run: apt-get install -y$$missing" >&2; exit 1; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi
endef

deps:
	$(call install_missing,$(DEB_PACKAGES))

deps-test:
	$(call install_missing,$(DEB_TEST_PACKAGES))

# A separate scratch path keeps this static-stdlib build from invalidating the test build. The
# library is libsdlstm.so.MAJOR.MINOR.PATCH with SONAME libsdlstm.so.MAJOR (docs/ABI.md), and the two
# links a linker and a loader look for.
lib:
	swift build -c release --product sdlstm --scratch-path $(LIB_SCRATCH) -Xswiftc -static-stdlib \
	  -Xlinker --version-script=$(CURDIR)/Sources/SDLSTMCAPI/sdlstm.map -Xlinker -soname=$(SONAME)
	@mkdir -p build/lib
	@rm -f build/lib/libsdlstm.so*
	cp $$(swift build -c release --scratch-path $(LIB_SCRATCH) --show-bin-path)/libsdlstm.so $(LIB_REAL)
	ln -s $(notdir $(LIB_REAL)) build/lib/$(SONAME)
	ln -s $(SONAME) $(LIB)

# Each example is its own .c files and examples/common/example.c, the helpers they share; other builds
# of them (sanitizers, variants) compile the same lists.
EXAMPLE_COMMON := examples/common/example.c
LM_SOURCES     := examples/lm/lm.c examples/lm/lm_task.c $(EXAMPLE_COMMON)
NER_SOURCES    := examples/ner/ner.c $(EXAMPLE_COMMON)
NMT_SOURCES    := examples/nmt/nmt.c $(EXAMPLE_COMMON)
EXAMPLE_HEADERS := examples/common/example.h examples/lm/lm_task.h include/sdlstm.h
EXAMPLE_LINK    = $(CC) $(CFLAGS) -Iinclude $(filter %.c,$^) -Lbuild/lib -Wl,-rpath,'$$ORIGIN/../lib' -lsdlstm -lm -o $@

$(LM): $(LM_SOURCES) $(EXAMPLE_HEADERS) lib
	@mkdir -p build/bin
	$(EXAMPLE_LINK)

$(NER): $(NER_SOURCES) $(EXAMPLE_HEADERS) lib
	@mkdir -p build/bin
	$(EXAMPLE_LINK)

$(NMT): $(NMT_SOURCES) $(EXAMPLE_HEADERS) lib
	@mkdir -p build/bin
	$(EXAMPLE_LINK)

examples: $(LM) $(NER) $(NMT)

# The MPI variant of the LM trainer: lm_task.c's data and epoch, its own reduction; mpicc links MPI
# into the program only.
$(LM_MPI): CC = mpicc
$(LM_MPI): examples/lm/lm_mpi.c examples/lm/lm_task.c $(EXAMPLE_COMMON) $(EXAMPLE_HEADERS) lib
	@mkdir -p build/bin
	$(EXAMPLE_LINK)

examples-mpi: $(LM_MPI)

# What make install writes, relative to DESTDIR; make uninstall removes exactly these.
INSTALLED := $(LIBDIR)/$(notdir $(LIB_REAL)) $(LIBDIR)/$(SONAME) $(LIBDIR)/libsdlstm.so \
  $(INCLUDEDIR)/sdlstm.h $(LIBDIR)/pkgconfig/sdlstm.pc \
  $(LIBDIR)/cmake/sdlstm/sdlstmConfig.cmake $(LIBDIR)/cmake/sdlstm/sdlstmConfigVersion.cmake
# The CMake package finds the header from its own location, so a staged (DESTDIR) or moved tree works.
INCLUDEDIR_FROM_LIBDIR = $(shell realpath -m --relative-to=$(LIBDIR) $(INCLUDEDIR))
# sdlstm.pc names its directories through ${prefix} where they lie under it, so that
# `pkg-config --define-variable=prefix=…` points a staged tree's consumers at that tree.
SUBST = sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(patsubst $(PREFIX)/%,$${prefix}/%,$(LIBDIR))|g' \
  -e 's|@INCLUDEDIR@|$(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))|g' \
  -e 's|@VERSION@|$(VERSION)|g' -e 's|@MAJOR@|$(MAJOR)|g' -e 's|@SONAME@|$(SONAME)|g' \
  -e 's|@INCLUDEDIR_FROM_LIBDIR@|$(INCLUDEDIR_FROM_LIBDIR)|g'

# Installs what make lib built (building it first only if it is missing); never runs apt-get.
install: $(if $(wildcard $(LIB_REAL)),,lib)
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(LIBDIR)/cmake/sdlstm $(DESTDIR)$(INCLUDEDIR)
	install -m 755 -s --strip-program=strip $(LIB_REAL) $(DESTDIR)$(LIBDIR)/$(notdir $(LIB_REAL))
	ln -sf $(notdir $(LIB_REAL)) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libsdlstm.so
	install -m 644 include/sdlstm.h $(DESTDIR)$(INCLUDEDIR)/sdlstm.h
	$(SUBST) pkgconfig/sdlstm.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/sdlstm.pc
	$(SUBST) cmake/sdlstmConfig.cmake.in > $(DESTDIR)$(LIBDIR)/cmake/sdlstm/sdlstmConfig.cmake
	$(SUBST) cmake/sdlstmConfigVersion.cmake.in > $(DESTDIR)$(LIBDIR)/cmake/sdlstm/sdlstmConfigVersion.cmake

uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	-rmdir $(DESTDIR)$(LIBDIR)/cmake/sdlstm 2>/dev/null

# An install staged as a distribution package would stage it (DESTDIR, PREFIX=/usr): the versioned
# SONAME and links, a stripped library; a C++17 program built by CMake's find_package(sdlstm) and
# the same program and the C quickstart built by pkg-config alone train, save, load and generate;
# make uninstall then leaves nothing behind.
test-install: lib
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; lib=$$tmp/usr/lib; \
	$(MAKE) -s install DESTDIR=$$tmp PREFIX=/usr >/dev/null || exit 1; \
	readelf -d $$lib/$(notdir $(LIB_REAL)) | grep -q 'SONAME.*\[$(SONAME)\]' || { echo "install: SONAME is not $(SONAME)" >&2; exit 1; }; \
	[ "$$(readlink $$lib/$(SONAME))" = $(notdir $(LIB_REAL)) ] && [ "$$(readlink $$lib/libsdlstm.so)" = $(SONAME) ] || \
	  { echo "install: the links are not libsdlstm.so -> $(SONAME) -> $(notdir $(LIB_REAL))" >&2; exit 1; }; \
	if readelf -S $$lib/$(notdir $(LIB_REAL)) | grep -q '\.symtab'; then echo "install: the library is not stripped" >&2; exit 1; fi; \
	echo "install: $(SONAME) -> $(notdir $(LIB_REAL)), stripped to $$(( $$(stat -c %s $$lib/$(notdir $(LIB_REAL))) / 1024 )) KiB (build/lib: $$(( $$(stat -c %s $(LIB_REAL)) / 1024 )) KiB)"; \
	cmake -S examples/cpp -B $$tmp/cmake -DCMAKE_PREFIX_PATH=$$tmp/usr >$$tmp/cmake.log 2>&1 && \
	cmake --build $$tmp/cmake >>$$tmp/cmake.log 2>&1 || { cat $$tmp/cmake.log >&2; exit 1; }; \
	(cd $$tmp && env LD_LIBRARY_PATH=$$lib ./cmake/lm_generate cmake.h5) || exit 1; \
	echo "install: a C++ program built by CMake find_package(sdlstm) trained, saved, loaded and generated"; \
	pc="pkg-config --define-variable=prefix=$$tmp/usr"; export PKG_CONFIG_PATH=$$lib/pkgconfig; \
	c++ -std=c++17 -Wall -Wextra examples/cpp/lm_generate.cpp -o $$tmp/lm_pc $$($$pc --cflags --libs sdlstm) && \
	$(CC) $(CFLAGS) examples/quickstart.c -o $$tmp/quickstart $$($$pc --cflags --libs sdlstm) && \
	(cd $$tmp && env LD_LIBRARY_PATH=$$lib ./lm_pc pc.h5 >/dev/null && env LD_LIBRARY_PATH=$$lib ./quickstart >/dev/null) || exit 1; \
	echo "install: the same C++ program and the C quickstart built by pkg-config alone ran"; \
	$(MAKE) -s uninstall DESTDIR=$$tmp PREFIX=/usr >/dev/null; \
	left=$$(find $$tmp/usr \( -type f -o -type l \) -print); \
	if [ -n "$$left" ]; then echo "uninstall left: $$left" >&2; exit 1; fi; echo "install: make uninstall removed every installed file"

test: deps deps-test test-swift test-abi test-install test-checkpoints test-apply test-plot test-kill sanitize test-fuzz test-mpi

# Release mode: the kernels are SIMD code that is far too slow unoptimised for the training tests.
test-swift: deps deps-test
	swift test -c release

# The C side: the exports match the header, and the library needs no Swift runtime.
test-abi: lib examples
	@hdr=$$(grep -oE '\bsdlstm_[a-z0-9_]+[[:space:]]*\(' include/sdlstm.h | tr -d ' (' | sort -u); \
	exp=$$(nm -D --defined-only $(LIB) | awk '$$2=="T"{sub(/@.*/, "", $$3); print $$3}' | sort -u); \
	if [ "$$hdr" != "$$exp" ]; then echo "exports differ from include/sdlstm.h:"; \
	  diff <(echo "$$hdr") <(echo "$$exp"); exit 1; fi; \
	echo "abi: libsdlstm.so exports exactly the $$(echo "$$hdr" | wc -l) functions of include/sdlstm.h"
	@if readelf -d $(LIB) | grep -q 'libswift'; then echo "libsdlstm.so depends on the Swift runtime" >&2; exit 1; fi
	@if readelf -d $(LIB) | grep -qi 'mpi'; then echo "libsdlstm.so depends on MPI" >&2; exit 1; fi
	@echo "abi: libsdlstm.so needs no Swift runtime library and no MPI"
	$(LM) --data data/ptb --hidden 32 --layers 2 --epochs 1 --max-steps 20 --policy structured --p-nr 0.5 --p-rh 0.3 >/dev/null

# The LM example's checkpoints, on a slice of PTB so that it takes seconds: two epochs straight, or one,
# --save, --load, one more (the lr decays after epoch 1, so the schedule must continue) end in
# byte-identical checkpoints; --load --epochs 0 evaluates to the same perplexities; and PyTorch, given
# only the checkpoint (its vocabulary included) and the validation text, computes that perplexity too.
test-checkpoints: $(LM)
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	head -n 3000 data/ptb/ptb.train.txt > $$tmp/ptb.train.txt; \
	for s in valid test; do head -n 300 data/ptb/ptb.$$s.txt > $$tmp/ptb.$$s.txt; done; \
	args="--data $$tmp --hidden 24 --max-steps 8 --p-nr 0.5 --p-rh 0.3 --decay-after 1"; \
	ppl() { grep -o "\"$$1\":[^,]*" $$2 | cut -d: -f2; }; \
	$(LM) $$args --epochs 2 --save $$tmp/straight.h5 > $$tmp/straight.json 2>/dev/null && \
	$(LM) $$args --epochs 1 --save $$tmp/first.h5 > /dev/null 2>&1 && \
	$(LM) --data $$tmp --load $$tmp/first.h5 --epochs 1 --max-steps 8 --save $$tmp/resumed.h5 > $$tmp/resumed.json 2>/dev/null && \
	cmp $$tmp/straight.h5 $$tmp/resumed.h5 && \
	$(LM) --data $$tmp --load $$tmp/resumed.h5 --epochs 0 > $$tmp/eval.json 2>/dev/null || exit 1; \
	for k in valid_ppl test_ppl; do \
	  if [ "$$(ppl $$k $$tmp/straight.json)" != "$$(ppl $$k $$tmp/resumed.json)" ] || \
	     [ "$$(ppl $$k $$tmp/straight.json)" != "$$(ppl $$k $$tmp/eval.json)" ]; then \
	    echo "checkpoints: $$k differs: $$(cat $$tmp/straight.json $$tmp/resumed.json $$tmp/eval.json)" >&2; exit 1; fi; \
	done; \
	echo "checkpoints: sdlstm-lm resumed from a checkpoint ends bit-identical to a straight run; --epochs 0 evaluates (valid ppl $$(ppl valid_ppl $$tmp/eval.json))"; \
	if /usr/bin/python3 -c 'import torch, h5py' 2>/dev/null; then \
	  torch=$$(/usr/bin/python3 tools/checkpoint_to_torch.py $$tmp/resumed.h5 --text $$tmp/ptb.valid.txt | grep -o '"perplexity": [^,}]*' | cut -d' ' -f2); \
	  awk -v a="$$torch" -v b="$$(ppl valid_ppl $$tmp/eval.json)" 'BEGIN { d = (a - b) / b; if (d < 0) d = -d; \
	    printf "checkpoints: PyTorch from the checkpoint alone: valid ppl %.6g vs sdlstm %s (relative %.1e)\n", a, b, d; exit !(d < 1e-4) }'; \
	else echo "checkpoints: python3-torch or python3-h5py missing: skipping the PyTorch perplexity check"; fi

# The checkpoint fuzzer (fuzz/fuzz_load.c): seeds of the three tasks, crafted variants of them
# (fuzz/craft.py, h5py), issue 12's reproducers (Tests/Fixtures/checkpoints), then FUZZ_CASES
# mutations from FUZZ_SEED, each load in a forked child: any crash, hang over 2 s, status other
# than OK/E_FORMAT/E_IO, refusal without a message naming the object, or peak RSS over
# 64 MiB + 4 x the file fails the run. `make test` runs a short slice with a fixed seed, and
# checks that sdlstm-lm --load refuses each reproducer with a message (exit 1, not a signal).
FUZZ     := build/bin/sdlstm-fuzz-load
FUZZ_CASES ?= 20000
FUZZ_SEED  ?= 1
$(FUZZ): fuzz/fuzz_load.c include/sdlstm.h lib
	@mkdir -p build/bin
	$(CC) $(CFLAGS) -Iinclude $< -Lbuild/lib -Wl,-rpath,'$$ORIGIN/../lib' -lsdlstm -o $@

define run_fuzz
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	$(FUZZ) seeds $$tmp && /usr/bin/python3 fuzz/craft.py $$tmp && \
	$(FUZZ) run --cases $(1) --seed $(2) $$tmp $$tmp/seed-*.h5 $$tmp/crafted-*.h5 Tests/Fixtures/checkpoints/*.h5
endef

fuzz: deps-test $(FUZZ)
	$(call run_fuzz,$(FUZZ_CASES),$(FUZZ_SEED))
	$(MAKE) -s sanitize SANITIZE_ABI_CALLS=$(FUZZ_CASES)

test-fuzz: deps-test $(FUZZ) $(LM)
	$(call run_fuzz,600,1)
	@for f in Tests/Fixtures/checkpoints/*.h5; do \
	  $(LM) --data data/ptb --load $$f --epochs 0 > /dev/null 2> build/fuzz-lm.err; rc=$$?; \
	  if [ $$rc != 1 ] || ! grep -q "$$f" build/fuzz-lm.err; then \
	    echo "fuzz: sdlstm-lm --load $$f exited $$rc: $$(cat build/fuzz-lm.err)" >&2; exit 1; fi; \
	done; echo "fuzz: sdlstm-lm --load refuses each of Tests/Fixtures/checkpoints with a message"

# 500 kill -9 at seeded random moments of a child's save loop: the checkpoint always loads and at
# most one stale temporary remains (Tests/c/save_kill.c says what is checked). 20-35 s on 2 busy cores.
SAVE_KILL := build/bin/save_kill
$(SAVE_KILL): Tests/c/save_kill.c include/sdlstm.h lib
	@mkdir -p build/bin
	$(CC) $(CFLAGS) -Iinclude $< -Lbuild/lib -Wl,-rpath,'$$ORIGIN/../lib' -lsdlstm -o $@

test-kill: $(SAVE_KILL)
	$(SAVE_KILL) 500 1

# The C clients built with AddressSanitizer and UndefinedBehaviorSanitizer against build/lib, each run
# briefly on slices of the data: any report (leaks included) fails the target. The library itself is
# not instrumented: this checks the clients and every buffer they hand across the ABI. About 20 s.
SANITIZE_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g
SANITIZE_DIR   := build/sanitize
# Random ABI calls (fuzz/fuzz_abi.c) under the sanitizers; `make fuzz` runs FUZZ_CASES of them.
SANITIZE_ABI_CALLS ?= 2000
sanitize: lib
	@mkdir -p $(SANITIZE_DIR)
	@build() { out=$$1; shift; $(CC) $(CFLAGS) $(SANITIZE_FLAGS) -Iinclude -Iexamples/common "$$@" -Lbuild/lib \
	  -Wl,-rpath,$(CURDIR)/build/lib -lsdlstm -lm -o $(SANITIZE_DIR)/$$out || exit 1; }; \
	build quickstart examples/quickstart.c; build lm $(LM_SOURCES); build ner $(NER_SOURCES); build nmt $(NMT_SOURCES); \
	build save_kill Tests/c/save_kill.c; build fuzz_abi fuzz/fuzz_abi.c; \
	c++ -std=c++17 $(SANITIZE_FLAGS) -Iinclude examples/cpp/lm_generate.cpp -Lbuild/lib -Wl,-rpath,$(CURDIR)/build/lib -lsdlstm \
	  -o $(SANITIZE_DIR)/lm_generate || exit 1
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=99 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1; \
	run() { "$$@" > /dev/null 2> $$tmp/stderr || { cat $$tmp/stderr >&2; echo "sanitize: failed: $$*" >&2; exit 1; }; }; \
	mkdir $$tmp/ptb $$tmp/conll $$tmp/m30k; \
	for f in train valid test; do head -n 400 data/ptb/ptb.$$f.txt > $$tmp/ptb/ptb.$$f.txt; done; \
	for f in train dev test; do head -n 1500 data/conll2003/$$f.txt > $$tmp/conll/$$f.txt; done; \
	for f in train val test_2016_flickr; do for l in de en; do head -n 60 data/multi30k/$$f.$$l > $$tmp/m30k/$$f.$$l; done; done; \
	d=$(SANITIZE_DIR); \
	run $$d/quickstart; \
	run $$d/lm --data $$tmp/ptb --hidden 32 --layers 2 --epochs 1 --max-steps 10 --policy structured --p-nr 0.5 --p-rh 0.3 \
	  --threads 2 --save $$tmp/lm.h5; \
	run $$d/lm --data $$tmp/ptb --load $$tmp/lm.h5 --epochs 0; \
	run $$d/ner --data $$tmp/conll --hidden 32 --epochs 1 --max-steps 5 --threads 2; \
	run $$d/nmt --data $$tmp/m30k --src de --tgt en --hidden 32 --embed 32 --epochs 1 --max-steps 5 --threads 2 --out $$tmp/hyp.en; \
	run $$d/save_kill 50 2; \
	run $$d/lm_generate $$tmp/cpp.h5; \
	run $$d/fuzz_abi $(SANITIZE_ABI_CALLS) 1 $$tmp; \
	echo "sanitize: quickstart, lm (train, save, load), ner, nmt, save_kill, the C++ lm_generate and $(SANITIZE_ABI_CALLS) random ABI calls (fuzz/fuzz_abi.c) ran clean under ASan + UBSan"

# The examples applied to a checkpoint alone (no --data), each trained for seconds on a slice of its
# data. sdlstm-lm: scores a text it never saw, with invented words (counted as <unk>), to the
# perplexity --load --epochs 0 evaluates on the same tokens (one stream: a checkpoint of --batch 1,
# and a valid file of an empty line, the <eos> that score puts first, then the text); generates
# from a prompt, the same text for the same seed; --threads defaults to the CPUs of the process's
# affinity (nproc counts the same; 1 under taskset -c 0). sdlstm-ner and sdlstm-nmt: --load
# evaluates to the numbers of the run that saved the checkpoint; tagging a CoNLL file gives one more
# column per line, tags of the tag set, and conlleval scores it as the evaluation did; a
# sentence-per-line file becomes its tokens, one per line, with the same tags; translation gives one
# line per line, an empty line for an empty one, and of the test sources exactly the evaluation's --out
# (in batches of another size: a fixed --max-decode, as the default limit follows each batch's longest source).
test-apply: examples
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; set -e; \
	num() { grep -o "\"$$1\":[^,}]*" $$2 | cut -d: -f2; }; \
	same() { for k in $$3; do if [ "$$(num $$k $$1)" != "$$(num $$k $$2)" ]; then \
	  echo "apply: $$k differs: $$(cat $$1 $$2)" >&2; exit 1; fi; done; }; \
	mkdir $$tmp/lm $$tmp/eval; head -n 3000 data/ptb/ptb.train.txt > $$tmp/lm/ptb.train.txt; \
	for s in valid test; do head -n 200 data/ptb/ptb.$$s.txt > $$tmp/lm/ptb.$$s.txt; done; \
	$(LM) --data $$tmp/lm --hidden 24 --batch 1 --max-steps 40 --save $$tmp/lm.h5 > /dev/null 2>&1; \
	{ sed -n 201,260p data/ptb/ptb.test.txt; echo "the zorblatt quibbled frumiously over glorped snarfs"; } > $$tmp/unseen.txt; \
	$(LM) score --load $$tmp/lm.h5 $$tmp/unseen.txt > $$tmp/score.json 2> $$tmp/score.err; \
	cp $$tmp/lm/ptb.train.txt $$tmp/eval/; { echo; cat $$tmp/unseen.txt; } > $$tmp/eval/ptb.valid.txt; \
	cp $$tmp/eval/ptb.valid.txt $$tmp/eval/ptb.test.txt; \
	$(LM) --data $$tmp/eval --load $$tmp/lm.h5 --epochs 0 > $$tmp/eval.json 2>/dev/null; \
	oov=$$(num oov $$tmp/score.json); grep -q "$$oov words outside the vocabulary read as <unk>" $$tmp/score.err; \
	awk -v a="$$(num ppl $$tmp/score.json)" -v b="$$(num valid_ppl $$tmp/eval.json)" -v oov="$$oov" 'BEGIN { d = (a - b) / b; \
	  if (d < 0) d = -d; printf "apply: sdlstm-lm score of an unseen text (%d words read as <unk>): ppl %s, --load --epochs 0 %s (relative %.1e)\n", \
	  oov, a, b, d; exit !(d < 1e-5 && oov >= 5) }'; \
	$(LM) generate --load $$tmp/lm.h5 --prompt "the stock market" --tokens 30 --seed 7 > $$tmp/gen1.txt 2>/dev/null; \
	$(LM) generate --load $$tmp/lm.h5 --prompt "the stock market" --tokens 30 --seed 7 > $$tmp/gen2.txt 2>/dev/null; \
	cmp -s $$tmp/gen1.txt $$tmp/gen2.txt; head -c 17 $$tmp/gen1.txt | grep -qx "the stock market "; \
	tr ' ' '\n' < $$tmp/lm/ptb.train.txt | sort -u > $$tmp/vocab.txt; \
	tr ' ' '\n' < $$tmp/gen1.txt | grep -v '^$$' | sort -u | comm -23 - $$tmp/vocab.txt | grep -q . && \
	  { echo "apply: generated words outside the vocabulary: $$(cat $$tmp/gen1.txt)" >&2; exit 1; }; \
	echo "apply: sdlstm-lm generate, seed 7: $$(head -n 1 $$tmp/gen1.txt | cut -c1-70)..."; \
	[ "$$(num threads $$tmp/score.json)" = "$$(nproc)" ]; \
	taskset -c 0 $(LM) score --load $$tmp/lm.h5 $$tmp/unseen.txt 2>/dev/null | grep -q '"threads":1,'; \
	echo "apply: the examples' default --threads: the $$(nproc) cores available, 1 under taskset -c 0"; \
	mkdir $$tmp/ner; head -n 20000 data/conll2003/train.txt > $$tmp/ner/train.txt; \
	for s in dev test; do head -n 1000 data/conll2003/$$s.txt > $$tmp/ner/$$s.txt; done; \
	$(NER) --data $$tmp/ner --hidden 50 --embed 32 --char-embed 8 --char-hidden 16 --epochs 4 --lr 4 \
	  --save $$tmp/ner.h5 > $$tmp/ner-train.json 2>/dev/null; \
	$(NER) --data $$tmp/ner --load $$tmp/ner.h5 > $$tmp/ner-eval.json 2>/dev/null; \
	same $$tmp/ner-train.json $$tmp/ner-eval.json "dev_f1 test_f1 best_epoch"; \
	$(NER) tag --load $$tmp/ner.h5 $$tmp/ner/test.txt > $$tmp/ner-tagged.txt 2>/dev/null; \
	cut -d' ' -f4 $$tmp/ner/train.txt | grep . | sort -u > $$tmp/tags.txt; \
	paste -d'|' $$tmp/ner/test.txt $$tmp/ner-tagged.txt | awk -F'|' -v tags="$$(tr '\n' ' ' < $$tmp/tags.txt)" \
	  'BEGIN { split(tags, t, " "); for (i in t) ok[t[i]] = 1 } \
	   { a = split($$1, x, " "); b = split($$2, y, " "); if (b != (a ? a + 1 : 0) || (b && !(y[b] in ok))) bad++ } \
	   END { if (NR == 0 || bad) { print "apply: sdlstm-ner tag: " bad " malformed lines" > "/dev/stderr"; exit 1 } }'; \
	[ "$$(wc -l < $$tmp/ner-tagged.txt)" = "$$(wc -l < $$tmp/ner/test.txt)" ]; \
	f1=$$(/usr/bin/python3 tools/conlleval.py --json $$tmp/ner-tagged.txt | grep -o '"f1": [^,}]*' | cut -d' ' -f2); \
	awk -v a="$$f1" -v b="$$(num test_f1 $$tmp/ner-eval.json)" 'BEGIN { d = a - b; if (d < 0) d = -d; \
	  printf "apply: sdlstm-ner --load: dev F1 and test F1 as saved; tag of test.txt: conlleval F1 %.4f, --load %.4f\n", a, b; exit !(d < 1e-3) }'; \
	awk 'NF && $$1 != "-DOCSTART-" { printf "%s%s", sep, $$1; sep = " " } !NF && sep { print ""; sep = "" } END { if (sep) print "" }' \
	  $$tmp/ner/test.txt > $$tmp/ner-lines.txt; \
	$(NER) tag --load $$tmp/ner.h5 --format lines $$tmp/ner-lines.txt > $$tmp/ner-lines.out 2>/dev/null; \
	[ "$$(grep -c '^$$' $$tmp/ner-lines.out)" = "$$(wc -l < $$tmp/ner-lines.txt)" ]; \
	diff <(tr ' ' '\n' < $$tmp/ner-lines.txt) <(grep . $$tmp/ner-lines.out | cut -d' ' -f1) > /dev/null; \
	diff <(awk 'NF && $$1 != "-DOCSTART-" { print $$NF }' $$tmp/ner-tagged.txt) <(grep . $$tmp/ner-lines.out | cut -d' ' -f2) > /dev/null; \
	echo "apply: sdlstm-ner tag --format lines: $$(wc -l < $$tmp/ner-lines.txt) sentences, the tags of the CoNLL input"; \
	mkdir $$tmp/nmt; for l in de en; do head -n 3000 data/multi30k/train.$$l > $$tmp/nmt/train.$$l; \
	  head -n 100 data/multi30k/val.$$l > $$tmp/nmt/val.$$l; head -n 100 data/multi30k/test_2016_flickr.$$l > $$tmp/nmt/test_2016_flickr.$$l; done; \
	$(NMT) --data $$tmp/nmt --hidden 32 --embed 32 --layers 1 --epochs 3 --max-steps 40 --batch 32 --beam 2 --max-decode 30 \
	  --save $$tmp/nmt.h5 > $$tmp/nmt-train.json 2>/dev/null; \
	$(NMT) --data $$tmp/nmt --load $$tmp/nmt.h5 --beam 2 --max-decode 30 --out $$tmp/nmt-test.hyp > $$tmp/nmt-eval.json 2>/dev/null; \
	same $$tmp/nmt-train.json $$tmp/nmt-eval.json "val_bleu test_bleu val_ppl best_epoch"; \
	$(NMT) translate --load $$tmp/nmt.h5 --beam 2 --max-decode 30 $$tmp/nmt/test_2016_flickr.de > $$tmp/nmt-translated.txt 2>/dev/null; \
	cmp -s $$tmp/nmt-test.hyp $$tmp/nmt-translated.txt; \
	printf 'Ein Mann fährt Fahrrad.\n\nZwei Quarxbolde spielen im Schnee.\n\nEine Frau' > $$tmp/user.de; \
	$(NMT) translate --load $$tmp/nmt.h5 --beam 2 $$tmp/user.de > $$tmp/user.en 2>/dev/null; \
	[ "$$(wc -l < $$tmp/user.en)" = 5 ] && [ -z "$$(sed -n 2p $$tmp/user.en)$$(sed -n 4p $$tmp/user.en)" ] && [ -n "$$(sed -n 1p $$tmp/user.en)" ]; \
	echo "apply: sdlstm-nmt --load: val BLEU $$(num val_bleu $$tmp/nmt-eval.json), test BLEU and val ppl as saved; translate: the evaluation's test lines, one line per line"

# The README's pictures, from the JSON lines they were measured as (docs/data: the examples'
# --epoch-json of the runs the README names, and the make bench run of bench/compare.md).
plot:
	$(call install_missing,$(DEB_PLOT_PACKAGES))
	for t in lm ner nmt; do /usr/bin/python3 tools/plot.py curves docs/curves-$$t.png docs/data/$$t-structured.jsonl docs/data/$$t-standard.jsonl || exit 1; done
	/usr/bin/python3 tools/plot.py kernels docs/kernels.png docs/data/bench.jsonl
	/usr/bin/python3 tools/plot.py steps docs/steps.png docs/data/bench.jsonl

# tools/plot.py draws every picture from the committed data, and refuses input it cannot plot.
test-plot: deps-test
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; set -e; \
	for t in lm ner nmt; do /usr/bin/python3 tools/plot.py curves $$tmp/$$t.png docs/data/$$t-structured.jsonl docs/data/$$t-standard.jsonl; done; \
	/usr/bin/python3 tools/plot.py kernels $$tmp/kernels.png docs/data/bench.jsonl; \
	/usr/bin/python3 tools/plot.py steps $$tmp/steps.png docs/data/bench.jsonl; \
	for f in $$tmp/*.png; do head -c 8 $$f | od -An -c | grep -q 'P   N   G' || { echo "plot: $$f is not a PNG" >&2; exit 1; }; done; \
	if /usr/bin/python3 tools/plot.py steps $$tmp/bad.png docs/data/lm-structured.jsonl 2>/dev/null; then \
	  echo "plot: plot.py drew bench speeds from epoch lines" >&2; exit 1; fi; \
	echo "plot: tools/plot.py drew $$(ls $$tmp/*.png | wc -l) PNGs from docs/data"

# Data parallelism over real MPI, on a slice of PTB, with structured dropout (masks shared by every
# rank) and standard (per-sample masks of the global stream): 2 ranks of 10 streams each train as one
# rank of 20, every step's global loss within 1e-4 relative, and both validate as sdlstm-lm without a
# reducer does (relative 1e-4). Two ranks add their rows in another order, so their floats differ in
# the last bits; lr 5, not 20, keeps the first steps' sharp updates from growing that to 1e-4 in 20
# steps (at lr 20 it reaches 1e-4 by step 20; at lr 5 it stays near 1e-7). A checkpoint of a 2-rank
# run resumes on 1 rank (the lr schedule decaying after epoch 1) as a straight run goes on.
test-mpi: $(LM) $(LM_MPI)
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	head -n 2000 data/ptb/ptb.train.txt > $$tmp/ptb.train.txt; \
	for s in valid test; do head -n 200 data/ptb/ptb.$$s.txt > $$tmp/ptb.$$s.txt; done; \
	ppl() { grep -o "\"$$1\":[^,]*" $$2 | cut -d: -f2; }; \
	for pol in structured standard; do \
	  args="--data $$tmp --hidden 32 --batch 20 --max-steps 20 --lr 5 --threads 1 --policy $$pol --p-nr 0.5 --p-rh 0.3"; \
	  $(MPIRUN) -np 2 $(LM_MPI) $$args --loss-log $$tmp/two.txt > $$tmp/two.json 2>/dev/null && \
	  $(MPIRUN) -np 1 $(LM_MPI) $$args --loss-log $$tmp/one.txt > $$tmp/one.json 2>/dev/null && \
	  $(LM) $$args > $$tmp/plain.json 2>/dev/null || exit 1; \
	  paste $$tmp/one.txt $$tmp/two.txt | awk -v pol=$$pol '{ d = ($$2 - $$1) / $$1; if (d < 0) d = -d; if (d > w) w = d; n++ } \
	    END { printf "mpi: %s: 2 ranks x 10 streams vs 1 x 20: %d step losses, largest relative difference %.1e\n", pol, n, w; \
	          exit !(n == 20 && w < 1e-4) }' || exit 1; \
	  awk -v a="$$(ppl valid_ppl $$tmp/two.json)" -v b="$$(ppl valid_ppl $$tmp/one.json)" -v c="$$(ppl valid_ppl $$tmp/plain.json)" -v pol=$$pol \
	    'function rel(x, y) { return x > y ? (x - y) / y : (y - x) / y } \
	    BEGIN { printf "mpi: %s: valid ppl after 20 steps: 2 ranks %s, 1 rank %s, sdlstm-lm %s\n", pol, a, b, c; \
	      exit !(rel(a, c) < 1e-4 && rel(b, c) < 1e-4) }' || exit 1; \
	done; \
	args="--data $$tmp --hidden 32 --batch 20 --max-steps 20 --lr 5 --threads 1 --decay-after 1"; \
	$(MPIRUN) -np 2 $(LM_MPI) $$args --epochs 1 --save $$tmp/two.h5 > /dev/null 2>&1 && \
	$(MPIRUN) -np 1 $(LM_MPI) --data $$tmp --load $$tmp/two.h5 --epochs 1 --max-steps 20 --threads 1 > $$tmp/resumed.json 2>/dev/null && \
	$(LM) $$args --epochs 2 > $$tmp/straight.json 2>/dev/null || exit 1; \
	awk -v a="$$(ppl valid_ppl $$tmp/resumed.json)" -v b="$$(ppl valid_ppl $$tmp/straight.json)" \
	  'BEGIN { d = (a - b) / b; if (d < 0) d = -d; \
	    printf "mpi: epoch 1 on 2 ranks, saved, epoch 2 on 1 rank: valid ppl %s; sdlstm-lm 2 epochs straight: %s (relative %.1e)\n", a, b, d; \
	    exit !(d < 1e-4) }'

# When OpenBLAS runs a pre-AVX2 core on an AVX2/AVX-512 CPU and OPENBLAS_CORETYPE is unset, the
# remedy for the rest of this recipe line only (tools/blas-coretype.sh says so); tests never set it.
BLAS_REMEDY = coretype=$$(CC="$(CC)" tools/blas-coretype.sh); if [ -n "$$coretype" ]; then export OPENBLAS_CORETYPE=$$coretype; fi

# DEMO_STEPS steps of PTB (1328 make an epoch) per policy; each prints its JSON line, then the
# two side by side. 1000 steps keep the whole demo, build included, under 10 minutes on 2 cores.
DEMO_STEPS ?= 1000
demo: deps examples
	@echo "sdlstm demo: PTB, 2 x 200 LSTM, $(DEMO_STEPS) steps of batch 20 x 35, dropout p = 0.5 on the non-recurrent sites, $(THREADS) threads"
	@$(BLAS_REMEDY); for pol in structured standard; do \
	  echo "== $$pol dropout (progress on stderr)"; \
	  $(LM) --data data/ptb --hidden 200 --layers 2 --epochs 1 --max-steps $(DEMO_STEPS) --policy $$pol --p-nr 0.5 --threads $(THREADS) \
	    | tee build/demo-$$pol.json || exit 1; \
	done
	@awk 'BEGIN { printf "\n%-11s %10s %10s %10s %8s\n", "policy", "valid_ppl", "test_ppl", "words/s", "skipped" } \
	  { n = split($$0, kv, /[{},]/); for (i = 1; i <= n; i++) { split(kv[i], p, ":"); gsub(/"/, "", p[1]); gsub(/"/, "", p[2]); v[p[1]] = p[2] } \
	    printf "%-11s %10.1f %10.1f %10.0f %7.0f%%\n", v["policy"], v["valid_ppl"], v["test_ppl"], v["words_per_s"], 100 * v["skipped_macs_fraction"] }' \
	  build/demo-structured.json build/demo-standard.json

# JSON lines into build/bench.jsonl, the tables into build/bench.md (bench/compare.md keeps a copy).
# BENCH_THREADS and BENCH_ROUNDS override the defaults (2 threads, 12 timed rounds).
BENCH_THREADS ?= 2
BENCH_ROUNDS  ?= 12
bench: deps
	swift build -c release --product sdlstm-bench
	@mkdir -p build
	@bin=$$(swift build -c release --show-bin-path)/sdlstm-bench; $(BLAS_REMEDY); \
	{ $$bin kernels --threads $(BENCH_THREADS) --rounds $(BENCH_ROUNDS); \
	  $$bin model ptb-medium --threads $(BENCH_THREADS) --rounds $(BENCH_ROUNDS); \
	  $$bin model ptb-large --threads $(BENCH_THREADS) --rounds $(BENCH_ROUNDS); \
	  $$bin model ner --threads $(BENCH_THREADS) --rounds $(BENCH_ROUNDS); \
	  $$bin model nmt --threads $(BENCH_THREADS) --rounds $(BENCH_ROUNDS); \
	  $$bin model nmt --threads $(BENCH_THREADS) --rounds $(BENCH_ROUNDS) --p-percent 50; \
	  $$bin model ptb-medium --threads $(BENCH_THREADS) --rounds $(BENCH_ROUNDS) --sweep; \
	  $$bin model nmt --threads $(BENCH_THREADS) --rounds $(BENCH_ROUNDS) --sweep; \
	  if grep -qw avx512f /proc/cpuinfo; then \
	    echo "bench: the AVX2 kernels against OpenBLAS's AVX2 (Haswell) kernels, like with like" >&2; \
	    OPENBLAS_CORETYPE=Haswell $$bin kernels --isa avx2 --threads $(BENCH_THREADS) --rounds $(BENCH_ROUNDS); fi; \
	  if /usr/bin/python3 -c 'import torch' 2>/dev/null; then \
	    OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 bench/pytorch_reference.py --threads $(BENCH_THREADS) --rounds $(BENCH_ROUNDS); \
	  else echo "bench: python3-torch not installed, no PyTorch reference" >&2; fi; \
	} | tee build/bench.jsonl
	@python3 bench/summarize.py < build/bench.jsonl | tee build/bench.md

clean:
	rm -rf build .build $(LIB_SCRATCH)
