-- progress: a running job's latest progress report, kept under its own key
-- ("P:{Q}:progress:ID", JSON {"percent": n, "note": "...", "at": ms}) for the queue's
-- result_ttl, so that `job show` can tell how far it has come. Only the worker that holds
-- the job's lease may write it: a report under a stale token changes nothing. Hosts rate
-- the reports (at most one a second a job, and the last), so this is never a hot path.
-- KEYS[1] meta  KEYS[2] leases
-- ARGV[1] the caller's protocol version  ARGV[2] the lease token  ARGV[3] percent (0-100)
-- ARGV[4] the note ("" for none; the caller cuts it at 256 bytes)
-- Returns 1 when kept, 0 when the lease is no longer the caller's.
-- Errors: SQUE_NOQUEUE, SQUE_PROTOCOL, SQUE_FEATURE; SQUE_INVALID for a token that does not
-- parse or a percent that is not 0 to 100.
local s = open_call(KEYS[1], ARGV[1], 'result_ttl')
local id = parse_token(ARGV[2])
local percent = tonumber(ARGV[3])
if not id or not percent or percent < 0 or percent > 100 or percent ~= math.floor(percent) then
  return redis.error_reply('SQUE_INVALID progress takes a lease token and a percent from 0 to 100')
end
if not redis.call('ZSCORE', KEYS[2], ARGV[2]) then return 0 end
local report = {percent = percent, at = now_ms()}
if ARGV[4] ~= '' then report.note = string.sub(ARGV[4], 1, 256) end
redis.call('SET', key_base(KEYS[1]) .. 'progress:' .. id, cjson.encode(report), 'PX', s.result_ttl)
return 1
