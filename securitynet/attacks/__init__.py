"""attacks: membership/, stealing/, backdoor/ (STRIP), reuse/ (model-reuse, Ji et al.)."""
