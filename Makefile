# The two commands of the README. Each installs what it needs (scripts/bootstrap.sh).
.PHONY: demo test lint

demo:
	@UV=$$(scripts/bootstrap.sh) && $$UV run --frozen duragent demo

test:
	@UV=$$(scripts/bootstrap.sh test) && \
	$$UV run --frozen ruff check . && \
	$$UV run --frozen ruff format --check . && \
	$$UV run --frozen mypy && \
	$$UV run --frozen pytest

lint:
	@UV=$$(scripts/bootstrap.sh) && $$UV run --frozen ruff check . && $$UV run --frozen mypy
