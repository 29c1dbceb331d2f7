-- children: the follow-up jobs of completed jobs, on their way to their queues (feature
-- `children`). `exchange` commits a completed job's staged follow-ups as `children:ID` and
-- adds ID to `parents`; the movers (every manager runs one) take parents from here, push each
-- follow-up to its queue exactly once (`push_unique`, under a key named for the parent and the
-- follow-up's index, or the follow-up's own unique key), and report them done here.
-- A parent taken is claimed for `claim` ms (its score in `parents` moves to then): a mover that
-- dies meanwhile leaves it to be taken again, and the keys make the second push write nothing.
-- KEYS[1] meta
-- ARGV[1] the caller's protocol version, ARGV[2] the action:
--   "take" ARGV[3] the most parents, ARGV[4] claim ms. Returns a flat list: for each parent
--     taken, its id, its number of follow-ups n, then 4n values (queue, due, unique key, data);
--     and, last, the ms until the next parent may be taken (-1: none left).
--   "done" ARGV[3] the parent's id, then one value per follow-up in order: "QUEUE ID" when it
--     was pushed (or its unique key was held: the holder's id), or "QUEUE WHY" when it could
--     not be (a queue name holds no space). Keeps them under `children_of:ID` for the queue's result_ttl,
--     drops the follow-ups and the parent. Returns 1, or 0 when another mover had done so.
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
    local children = redis.call('LRANGE', base .. 'children:' .. id, 0, -1)
    out[#out + 1] = id
    out[#out + 1] = tostring(math.floor(#children / 4))
    for _, value in ipairs(children) do out[#out + 1] = value end
  end
  local next = redis.call('ZRANGE', parents, 0, 0, 'WITHSCORES')[2]
  out[#out + 1] = string.format('%d', next and math.max(tonumber(next) - now, 0) or -1)
  return out
elseif action == 'done' then
  local s = open_call(KEYS[1], ARGV[1], 'result_ttl')
  local id = ARGV[3]
  if redis.call('ZREM', parents, id) == 0 then return 0 end
  redis.call('DEL', base .. 'children:' .. id)
  if #ARGV > 3 then
    local of = base .. 'children_of:' .. id
    redis.call('DEL', of)
    redis.call('RPUSH', of, unpack(ARGV, 4))
    redis.call('PEXPIRE', of, s.result_ttl)
  end
  return 1
end
return redis.error_reply('SQUE_INVALID children takes "take" or "done", not ' .. string.format('%q', string.sub(action or '', 1, 20)))
