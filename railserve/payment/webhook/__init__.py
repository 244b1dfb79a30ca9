"""The gateways' signed callbacks: verify, de-duplicate, and apply exactly once.

One handler for every provider. Events in RailServe's own format (POST /payment/webhook,
`RailServe-Signature`) are verified here; a provider with a format of its own (SimUPI)
verifies and translates its events (`read_webhook`) into this format. The simulators hand
their events to `handle_logged` in-process, so real and simulated gateways go through the
same checks. Three parts, each importing only the one before it:
- `event`: the format; verify a delivery's signature and parse it into an `Event`.
- `handler`: `handle` applies one event exactly once (or refuses it, with the reason
  recorded in the attempt's audit trail).
- `log`: `handle_logged`, the door every delivery comes through: `handle`, and one
  `WebhookLog` row with our answer, which operators read and replay.
"""
