#!/usr/bin/env bash
# Installs everything the tests need (into .venv, from this repository's own files) and runs the whole
# suite: format check, lint, type check, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

# The slow tests keep virtualenvs, wheels and an image's root under the temp dir between runs (~7 GB,
# tests/support/cache.py); on a full disk they fail in ways that do not say why, so say it first.
temp_dir="${TMPDIR:-/tmp}"
free_gb=$(df -Pk "$temp_dir" 2> /dev/null | awk 'NR == 2 { print int($4 / 1048576) }') || free_gb=""
if [ "${LLM_OBSERVER_SLOW_TESTS:-1}" = "1" ] && [ -n "$free_gb" ] && [ "$free_gb" -lt 10 ]; then
  echo "warning: ${free_gb} GB free under $temp_dir; the slow tests need ~7 GB there on a first run" >&2
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# setuptools explains what an editable install is on every one (a notice, not a problem of ours): keep the
# log to what needs reading.
export PYTHONWARNINGS="ignore:Editable installation:UserWarning"
# Every folder is its own distribution; requirements.txt installs them all, editable, then the test extras.
.venv/bin/python -m pip install -q -r requirements.txt
.venv/bin/python -m pip install -q -e ".[test,providers,frameworks]"

# Jaeger v2 (for the OTLP forwarding tests) and Alertmanager (for the alerting tests) are built from the Go
# module proxy (cached under ~/.cache/llm-observer, so only a new machine builds them): in the background while
# the rest installs and the checks run, one after the other (two Go builds at once only compete for the cores).
go_builds=""
if [ "${LLM_OBSERVER_SLOW_TESTS:-1}" = "1" ]; then
  (.venv/bin/python -m tests.support.jaeger && .venv/bin/python -m tests.support.alertmanager) \
    > .venv/go-builds.log 2>&1 &
  go_builds=$!
fi

# The web view's tests drive Debian's headless Chromium (Playwright's own browser download cannot work here).
if [ "${LLM_OBSERVER_SLOW_TESTS:-1}" = "1" ] && ! command -v chromium > /dev/null; then
  if [ "$(id -u)" = "0" ]; then apt_get="apt-get"; else apt_get="sudo apt-get"; fi
  $apt_get update -qq && DEBIAN_FRONTEND=noninteractive $apt_get install -y -qq chromium chromium-driver > /dev/null
fi

# The examples in other languages run against a live collector in tests/examples.
(cd examples/javascript_otlp && npm ci --no-audit --no-fund --loglevel=error)
(cd examples/go_otlp_grpc && go mod download)
(cd examples/java_otlp && mvn -q -B package -DskipTests)
# A real Kafka broker for the fan-out tests: its jars from Maven Central, cached under ~/.cache/llm-observer.
.venv/bin/python -c "from tests.support.kafka import kafka_lib; kafka_lib()"

echo "== ruff format --check"
.venv/bin/ruff format --check .
echo "== ruff check"
.venv/bin/ruff check .
echo "== mypy"
.venv/bin/mypy -p llm_observer.semconv -p llm_observer.kernel -p llm_observer.instrumentation \
  -p llm_observer.collector -p llm_observer.processors -p llm_observer.storage -p llm_observer.exporters \
  -p llm_observer.query -m llm_observer -m llm_observer.integrations
if [ -n "$go_builds" ] && ! wait "$go_builds"; then
  cat .venv/go-builds.log
  echo "building Jaeger or Alertmanager failed" >&2
  exit 1
fi
echo "== pytest"
# The instrumentation tests against the oldest supported provider SDKs build their own environments.
export LLM_OBSERVER_SLOW_TESTS="${LLM_OBSERVER_SLOW_TESTS:-1}"
# The slowest tests are listed at the end: where to look when the suite grows.
.venv/bin/python -m pytest --durations=25 "$@"
