"""Identity: trust anchor, issuers and workload certificate signing. May import isthmus.model only."""
