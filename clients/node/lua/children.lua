-- children: the follow-up jobs of completed jobs, on their way to their queues (feature
-- `children`). `exchange` commits a completed job's staged follow-ups as `children:ID` and
-- adds ID to `parents`; the movers (every manager runs one) take parents from here, push each
-- follow-up to its queue (`push_unique`, under a key named for the parent and the follow-up's
-- index, or the follow-up's own unique key), record here what became of each run of them as
-- they go, and report the parent done.
-- A parent taken is claimed for `claim` ms (its score in `parents` moves to then; each record
-- renews it): a mover that dies leaves it to be taken again then, from the first follow-up not
-- recorded, and the keys make a push it had made but not recorded write nothing.
-- KEYS[1] meta
-- ARGV[1] the caller's protocol version, ARGV[2] the action:
--   "take" ARGV[3] the most parents, ARGV[4] claim ms. Returns a flat list: for each parent
--     taken, its id, how many of its follow-ups are recorded already, its number of
--     follow-ups n (-1 when its list is missing or not in the protocol's shape: then no
--     values follow),
--     then 4n values (queue, due, unique key, data); and, last, the ms until the next parent
--     may be taken (-1: none left).
--   "record" ARGV[3] the parent's id, ARGV[4] claim ms, ARGV[5] how many are recorded already
--     (as `take` said, plus what the caller recorded since), then what became of the next
--     follow-ups, in order: "QUEUE ID" when pushed (or its unique key was held: the holder's
--     id), "QUEUE WHY" when it could not be (a queue name holds no space). Appended to
--     `children_of:ID` unless another mover recorded meanwhile; returns 1, or 0 when the
--     caller is not the one moving the parent any more (it stops).
--   "done" ARGV[3] the parent's id, ARGV[4] its number of follow-ups: once all are recorded,
--     drops the follow-ups and the parent and keeps the record for the queue's result_ttl.
--     Returns 1, or 0 when it was not this caller's to end.
-- Errors: SQUE_NOQUEUE, SQUE_PROTOCOL, SQUE_FEATURE; SQUE_INVALID for another action.
local action = ARGV[2]
local base = key_base(KEYS[1])
local parents = base .. 'parents'
if action == 'take' then
  open_call(KEYS[1], ARGV[1])
  local now = now_ms()
  local limit, claim = tonumber(ARGV[3]), tonumber(ARGV[4])
  local ids = redis.call('ZRANGEBYSCORE', parents, '-inf', now, 'LIMIT', 0, limit)
  local out = {}
  for _, id in ipairs(ids) do
    redis.call('ZADD', parents, now + claim, id)
    local list = base .. 'children:' .. id
    local recorded = redis.call('LLEN', base .. 'children_of:' .. id)
    out[#out + 1] = id
    out[#out + 1] = tostring(recorded)
    -- Data nobody here wrote (a key of another type, a list not in fours) is reported as
    -- such, and the movers go on with the other parents.
    local n = redis.pcall('LLEN', list)
    if type(n) ~= 'number' or n == 0 or n % 4 ~= 0 then
      out[#out + 1] = '-1'
    else
      out[#out + 1] = tostring(n / 4)
      -- The follow-ups recorded already are not sent again.
      local values = redis.call('LRANGE', list, 4 * recorded, -1)
      for _, value in ipairs(values) do out[#out + 1] = value end
    end
  end
  local next = redis.call('ZRANGE', parents, 0, 0, 'WITHSCORES')[2]
  out[#out + 1] = string.format('%d', next and math.max(tonumber(next) - now, 0) or -1)
  return out
elseif action == 'record' then
  open_call(KEYS[1], ARGV[1])
  local id = ARGV[3]
  local of = base .. 'children_of:' .. id
  if not redis.call('ZSCORE', parents, id) or redis.call('LLEN', of) ~= tonumber(ARGV[5]) then
    return 0
  end
  -- In chunks: unpack has a limit, and a parent may have ten thousand follow-ups.
  for first = 6, #ARGV, 400 do
    redis.call('RPUSH', of, unpack(ARGV, first, math.min(first + 399, #ARGV)))
  end
  redis.call('ZADD', parents, now_ms() + tonumber(ARGV[4]), id)
  return 1
elseif action == 'done' then
  local s = open_call(KEYS[1], ARGV[1], 'result_ttl')
  local id = ARGV[3]
  local of = base .. 'children_of:' .. id
  if redis.call('LLEN', of) ~= tonumber(ARGV[4]) or redis.call('ZREM', parents, id) == 0 then
    return 0
  end
  redis.call('DEL', base .. 'children:' .. id)
  redis.call('PEXPIRE', of, s.result_ttl)
  return 1
end
return redis.error_reply('SQUE_INVALID children takes "take", "record" or "done", not ' .. string.format('%q', string.sub(action or '', 1, 20)))
