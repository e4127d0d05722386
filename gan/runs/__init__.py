"""One run from config to folder: the wiring (module + Trainer), budgets, resume, config checks,
`init_from`, compile, job resources and the speed benchmark."""
