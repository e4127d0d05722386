"""Training tricks, one module per family, each a `gan.core.trick.Trick` with one YAML in
conf/tricks/."""
