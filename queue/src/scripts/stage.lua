-- stage: a running job's follow-up jobs, kept under its lease's token until it completes
-- (feature `children`). `exchange` commits them with the completion, in the same call, so a
-- job that fails, times out, is cancelled or retried pushes nothing: the staged list expires
-- unread. A job's follow-ups are staged once, just before its completion is sent; staging
-- again replaces them. The first call records the feature (`requires` gains `children`), so
-- that a host that would complete the job without committing them refuses the queue instead.
-- KEYS[1] meta  KEYS[2] leases
-- ARGV[1] the caller's protocol version  ARGV[2] the job's lease token, then for each
-- follow-up: its queue, its due ("" or "+MS", after a mover pushes it), its unique key
-- ("" for none) and its data (JSON).
-- Returns 1 when staged, 0 when the lease is not held (stale: nothing written), -1 when the
-- job was cancelled (nothing written).
-- Errors: SQUE_NOQUEUE, SQUE_PROTOCOL, SQUE_FEATURE; SQUE_INVALID for arguments not in
-- fours, or a queue name or due not in the protocol's shape.
local s = open_call(KEYS[1], ARGV[1], 'lease')
local token = ARGV[2]
local count = (#ARGV - 2) / 4
if count < 1 or count ~= math.floor(count) then
  return redis.error_reply('SQUE_INVALID stage takes a token, then (queue, due, unique key, data) for each follow-up')
end
for i = 0, count - 1 do
  local queue, due = ARGV[3 + 4 * i], ARGV[4 + 4 * i]
  if #queue < 1 or #queue > 200 or string.find(queue, '[%s%c{}*?%[%]]') then
    return redis.error_reply('SQUE_INVALID follow-up ' .. (i + 1) .. ': ' .. string.format('%q', string.sub(queue, 1, 40)) .. ' is not a queue name')
  end
  if due ~= '' and not string.match(due, '^%+%d+$') or #due > 16 then
    return redis.error_reply('SQUE_INVALID follow-up ' .. (i + 1) .. ': due ' .. string.format('%q', string.sub(due, 1, 20)) .. ' is not "" or +MS')
  end
end
if not redis.call('ZSCORE', KEYS[2], token) then
  local cancelled = s.uses and s.uses.cancel and
    redis.call('ZSCORE', key_base(KEYS[1]) .. 'cancelled', parse_token(token) or '')
  return cancelled and -1 or 0
end
since_1_1().require_feature(KEYS[1], s.requires, 'children')
local staged = key_base(KEYS[1]) .. 'staged:' .. token
redis.call('DEL', staged)
-- In chunks: a job may push a thousand jobs, and unpack has a limit.
for first = 3, #ARGV, 400 do
  redis.call('RPUSH', staged, unpack(ARGV, first, math.min(first + 399, #ARGV)))
end
-- Long enough for the completion that follows at once; a job that never completes under
-- this token leaves nothing behind for long.
redis.call('PEXPIRE', staged, math.max(3 * s.lease, 60000))
return 1
