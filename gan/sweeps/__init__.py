"""Many runs: the sweep index, TensorBoard HParams, the search space and the report."""
