"""The spine every workflow stands on: the run folder (its files, one writer, one resume
rule, provenance) and strict JSON output."""
