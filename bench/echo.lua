-- wrk script for the /echo scenario: POST a 64 KiB body.
-- The body is "0123456789abcdef" repeated 4096 times, the same bytes the
-- servers use (bench/servers/payloads.mjs). wrk adds Content-Length itself.
wrk.method = "POST"
wrk.body = string.rep("0123456789abcdef", 4096)
wrk.headers["Content-Type"] = "application/octet-stream"
