"""The test suite (a package so that `tests.conftest` beats any other top-level `tests`
package on the path: torch-fidelity 0.4.0 installs one)."""
