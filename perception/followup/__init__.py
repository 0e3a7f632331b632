"""Follow-up reading: register the current CT to its priors, track lesions, RECIST 1.1 (comparison.json)."""
