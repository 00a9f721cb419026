# Two entry points: `make run` (set up everything and serve) and `make test` (the whole suite
# on SQLite, MariaDB/MySQL and PostgreSQL). See README.md.
SHELL := /bin/bash
# The interpreter the virtualenv is made from: Debian's own python3 where it is 3.10 or newer.
# Its interpreter is linked statically and built with Debian's optimizations, where a python3
# built from source (pyenv's default) runs through libpython3.11.so: the same single ingest took
# 4-13% less CPU in process and ~9% more rows/s at 8 clients (docs/PERFORMANCE.md, "Interpreter").
# `make PYTHON=python3.12 ...` picks another; an existing .venv is kept (`make clean` to remake it).
PYTHON ?= $(shell /usr/bin/python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null \
	&& echo /usr/bin/python3 || echo python3)
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
DEMO_ROWS ?= 20000
# The databases `make test` runs the suite on; override to point elsewhere.
TEST_MYSQL_URL ?= mysql://root@127.0.0.1:3306/cdp
TEST_POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/cdp

.PHONY: run test test-fast test-sqlite test-mysql test-postgres system-deps browser-deps venv migrate demo serve bench clean

run: venv migrate demo serve

# mysqlclient compiles against the MySQL/MariaDB client headers, found through pkg-config;
# Debian's python3 makes a virtualenv only with its venv package (ensurepip).
system-deps:
	@if { pkg-config --exists mysqlclient 2>/dev/null || pkg-config --exists libmariadb 2>/dev/null; } \
		&& $(PYTHON) -c 'import ensurepip' 2>/dev/null; then \
		true; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing the MySQL client headers, pkg-config (to build mysqlclient) and python3-venv..."; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			default-libmysqlclient-dev pkg-config build-essential python3-dev python3-venv >/dev/null; \
	else \
		echo "mysqlclient needs the MySQL client headers and pkg-config. Install them with:"; \
		echo "  sudo apt-get install default-libmysqlclient-dev pkg-config build-essential python3-dev python3-venv"; \
		exit 1; \
	fi

$(BIN)/python:
	$(MAKE) system-deps
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(MAKE) system-deps
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	touch $@

venv: $(VENV)/.installed

.secret_key:
	@$(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(50))' > $@

migrate: venv .secret_key
	SECRET_KEY=$$(cat .secret_key) $(BIN)/python manage.py migrate --noinput

demo: venv .secret_key
	SECRET_KEY=$$(cat .secret_key) $(BIN)/python manage.py load_demo_data --rows $(DEMO_ROWS)
	@SECRET_KEY=$$(cat .secret_key) $(BIN)/python manage.py create_api_client demo --password demo-password --demo

serve: venv .secret_key
	SECRET_KEY=$$(cat .secret_key) $(BIN)/python manage.py collectstatic --noinput -v0
	@echo "Serving on http://$(HOST):$(PORT)/ (API docs at http://$(HOST):$(PORT)/api/docs/)"
	@# One import worker runs beside the web server and stops with it (Ctrl+C stops both).
	export SECRET_KEY=$$(cat .secret_key); \
	$(BIN)/python manage.py import_worker & worker=$$!; \
	trap 'kill $$worker 2>/dev/null' EXIT INT TERM; \
	GUNICORN_BIND=$(HOST):$(PORT) GUNICORN_WORKERS=2 $(BIN)/gunicorn -c gunicorn.conf.py cdp_site.wsgi

# The whole suite, each test where it proves something (README, "Tests"): the tests of our own
# logic on all three databases; the slow ones (servers, browser, workers, outages) once, on
# MariaDB, and those about a database's own behaviour on PostgreSQL too. SQLite runs under
# `manage.py test`, the two servers under pytest, so both runners are exercised and no test runs
# twice on one database. Every pass runs in parallel, each worker on its own test database.
test: venv browser-deps test-sqlite test-mysql test-postgres

# The loop while working: SQLite, no slow tests, in parallel (about a minute).
test-fast: venv
	env -u DATABASE_URL $(BIN)/pytest -q -n $(TEST_WORKERS) -m "not slow"

# The browser tests drive Debian's Chromium (no browser is downloaded by Playwright).
browser-deps:
	@if [ -x /usr/bin/chromium ]; then \
		true; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing Debian's chromium for the browser tests..."; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core >/dev/null; \
	else \
		echo "The browser tests need Debian's chromium. Install it with:"; \
		echo "  sudo apt-get install chromium fonts-dejavu-core"; \
		exit 1; \
	fi

# Parallel workers per pass; the tests wait on the database often enough that one more than
# the cores keeps both busy.
TEST_WORKERS ?= $(shell echo $$(( $$(nproc) + 1 )))

test-sqlite: venv
	env -u DATABASE_URL $(BIN)/python manage.py test --noinput -v1 --parallel $(TEST_WORKERS) --exclude-tag slow

test-mysql: venv
	DATABASE_URL=$(TEST_MYSQL_URL) $(BIN)/pytest -q -n $(TEST_WORKERS)

test-postgres: venv
	DATABASE_URL=$(TEST_POSTGRES_URL) $(BIN)/pytest -q -n $(TEST_WORKERS) -m "not slow or each_database"

# The benchmark loads BENCH_ROWS generated transactions into its own database (kept between
# runs) and measures every endpoint over HTTP against gunicorn. See docs/PERFORMANCE.md.
BENCH_DATABASE_URL ?= mysql://root@127.0.0.1:3306/cdp_bench
BENCH_ROWS ?= 1000000
bench: venv
	@case "$(BENCH_DATABASE_URL)" in mysql://*) \
		$(BIN)/python -c 'import MySQLdb, dj_database_url as d; c = d.parse("$(BENCH_DATABASE_URL)"); \
			MySQLdb.connect(host=c["HOST"], port=int(c["PORT"] or 3306), user=c["USER"], passwd=c["PASSWORD"] or "") \
			.cursor().execute("CREATE DATABASE IF NOT EXISTS `%s` CHARACTER SET utf8mb4" % c["NAME"])';; esac
	DATABASE_URL=$(BENCH_DATABASE_URL) $(BIN)/python bench/run.py --rows $(BENCH_ROWS) --customers $$(( $(BENCH_ROWS) / 10 ))

clean:
	rm -rf $(VENV) staticfiles .test-db-*.sqlite3*
