"""Identity stage: trust anchor and issuers, platform tokens, and the CSR-signing identity service.

May import isthmus.model only. Pure rules take a clock and do no I/O:
`spiffe` (IDs), `anchors` (creating CAs), `bundle` (trusted anchors),
`csr_rules` + `signing` (what gets signed, and how), `tokens` (platform
tokens), `expiry` (findings for `isthmus check`). `files` and `load` read and
write trust material. `service` decides HTTP requests without sockets;
`http_wire` reads them and `server` is the TLS listener. The workload side,
used by the sidecar agent, is `csr` (stdlib + cryptography) and `client`
(stdlib only).
"""
