"""The request log: one row per /v1 or realtime request of an org, failures and refusals included.

- `table`: the `request_log` table (no prompt or completion unless the org turned content
  logging on);
- `entry`: what the request path fills in (`RequestEntry`), turned into row values only when
  the writer flushes;
- `recorder`: the buffered writer (`RequestLog`) and the notes the request path makes on the
  current entry;
- `middleware`: the ASGI layer that opens an entry for each logged `/v1` request;
- `retention`: the sweeper that deletes rows older than the retention setting;
- `query`: reading the log (admin API, CLI) and the org's content-logging setting.
"""
