.PHONY: check demo test
check:  ## what CI runs: lint, types, import contracts, tests
	./scripts/check
test:
	./scripts/check
demo:   ## the main job on the embedded default
	./scripts/demo
