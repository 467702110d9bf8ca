"""Multi-cluster: gateways, links and the service mirror (remote watch -> mirror decisions -> local writes).

Below the control plane, which runs a cluster's link controllers; may import viz,
platform, proxy, xds, identity and model. Decisions (`mirrors`, `mirror_events`,
`link_secret`, `remote_wire`, `probes.ProbeRecord`) are pure; `remote_api`,
`local_mirrors` and `probes.HttpProber` are the I/O edges, `controller` and
`links` tie them together.
"""
