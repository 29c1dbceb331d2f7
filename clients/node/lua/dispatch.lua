-- dispatch: match waiting jobs with stored requests, oldest with oldest, up to ARGV[2] pairs,
-- putting each job in its worker's inbox ("P:{Q}:inbox:W") under a lease. A request of a
-- worker whose heartbeat ran out is dropped.
-- KEYS[1] meta  KEYS[2] waiting  KEYS[3] requests  KEYS[4] jobs  KEYS[5] leases
-- KEYS[6] workers  KEYS[7] stats
-- ARGV[1] the caller's protocol version  ARGV[2] max pairs
-- Returns {how many pairs were served (as many as asked means "call again"), ms until the
-- queue's rate limit lets the next job go (-1: it is not holding jobs back)}.
-- Errors: SQUE_NOQUEUE, SQUE_PROTOCOL.
local s = open_call(KEYS[1], ARGV[1], 'lease', 'inbox_ttl', 'max_attempts', 'max_job_bytes')
local now = now_ms()
local srv = server()
local q = srv.serving(key_base(KEYS[1]), s, now)
local served = srv.dispatch_stored(q, {waiting = KEYS[2], requests = KEYS[3], workers = KEYS[6], stats = KEYS[7]},
                                   tonumber(ARGV[2]), now)
return {served, q.rate and since_1_2().rate_wait(q.rate, now) or -1}
