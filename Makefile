# Thin wrapper around ./dev.sh (which works without make on a fresh machine).
.PHONY: demo test lint bench setup
demo:
	./dev.sh demo
test:
	./dev.sh test
lint:
	./dev.sh lint
bench:
	./dev.sh bench
setup:
	sh scripts/setup.sh
