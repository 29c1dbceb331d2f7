-- exchange: one worker's traffic of a moment, in one call: completions first, then new
-- requests ("I am free"). A slot that finishes a job and asks for the next one costs one
-- round trip, and the jobs that can be handed out at once come back in the reply.
--
-- Completions: each entry is refused (0) when its token is stale (or named twice), or (3) when
-- its job was cancelled (`cancel`), and then changes nothing. A completed job lets go of its
-- unique key (kept for its window) and commits the follow-up jobs it staged (`stage`: they go
-- to `children:ID`, and ID to `parents`, for the movers; `children` is published). A
-- completion whose result is over the queue's max_result_bytes keeps nothing and sends the
-- job to the dead list (2, code result_too_large).
-- Requests: the worker's heartbeat is left alone. It is renew's alone (every third of a lease),
-- which also stores the worker's open requests again when it had run out: a dispatcher may
-- have dropped them meanwhile, and were the heartbeat renewed here, nothing would ever tell the
-- worker (it would wait on them for ever). A worker therefore calls renew once when it starts,
-- before its first exchange. When no older request is stored, the new ones are served at once
-- from the waiting jobs (as a manager would serve them next) and their deliveries returned;
-- the lease is taken here, so a reply lost on the way is a lease that runs out, as for a
-- worker that died. The rest are stored, oldest first, and a manager is woken if jobs wait.
-- KEYS[1] meta  KEYS[2] requests  KEYS[3] waiting  KEYS[4] workers (not read: it keeps its
-- place so that callers need not change)  KEYS[5] jobs
-- KEYS[6] leases  KEYS[7] stats  KEYS[8] errors  KEYS[9] results  KEYS[10] results_at
-- ARGV[1] the caller's protocol version  ARGV[2] worker id  ARGV[3] number of completions n,
-- then n triples (token "id|attempt|max", "1" when a result follows or "0", result JSON or ""),
-- then the request entries "worker:seq".
-- Returns {one 1, 0, 2 or 3 per completion, in order; the deliveries served at once, in order}.
-- Errors: SQUE_NOQUEUE, SQUE_PROTOCOL; SQUE_INVALID for a count of completions that is not
-- a number, or a request entry with no sequence number after its colon: refused before
-- anything is written, since a job popped for an entry that could not be served was in no
-- list, no lease and not dead.
local completions = tonumber(ARGV[3])
if not completions or completions < 0 or completions ~= math.floor(completions) or 4 + 3 * completions > #ARGV + 1 then
  return redis.error_reply('SQUE_INVALID exchange takes a count of completions, then that many triples')
end
local first = 4 + 3 * completions
-- The request entries, read before anything is written: an entry with no sequence number
-- after its colon is refused (a job popped for it could not be handed out, and was lost).
-- Read with the one pattern that serving them needs anyway: this is the hot path.
local requests = {}
for i = first, #ARGV do
  local seq = string.match(ARGV[i], ':(.+)$')
  if not seq then
    return redis.error_reply('SQUE_INVALID request entry ' .. string.format('%q', string.sub(ARGV[i], 1, 40)) ..
      ' is not WORKER:SEQ')
  end
  requests[#requests + 1] = {ARGV[2], seq}
end
-- The settings this call needs: those of serving when it asks, the result limit when a result
-- comes.
local results = false
for i = 1, completions do
  if ARGV[2 + 3 * i] == '1' then results = true; break end
end
local s
if first > #ARGV then
  s = results and open_call(KEYS[1], ARGV[1], 'max_result_bytes') or open_call(KEYS[1], ARGV[1])
elseif results then
  s = open_call(KEYS[1], ARGV[1], 'lease', 'max_attempts', 'max_job_bytes', 'max_result_bytes')
else
  s = open_call(KEYS[1], ARGV[1], 'lease', 'max_attempts', 'max_job_bytes')
end
local now = now_ms()
local held = {}
-- Leases this call ended: on a capped queue, room for the requests stored meanwhile.
local freed = 0
if completions > 0 then
  -- One ZMSCORE tells which leases still hold; one call each then ends them all.
  local tokens = {}
  for i = 1, completions do tokens[i] = ARGV[1 + 3 * i] end
  local scores = redis.call('ZMSCORE', KEYS[6], unpack(tokens))
  local ended, ids, seen = {}, {}, {}
  for i, token in ipairs(tokens) do
    local result = ARGV[2 + 3 * i] == '1' and ARGV[3 + 3 * i] or nil
    if scores[i] and not seen[token] and result and #result > s.max_result_bytes then
      seen[token] = true
      redis.call('ZREM', KEYS[6], token)
      local id = parse_token(token) or token
      local d = graveyard()
      d.bury(d.keys(key_base(KEYS[1])), s, token, id, 'result_too_large',
             'the result is ' .. #result .. ' bytes, over the queue\'s max_result_bytes of ' .. s.max_result_bytes, now)
      held[i] = 2
      freed = freed + 1
    elseif scores[i] and not seen[token] then
      seen[token] = true
      local id = string.match(token, '^([^|]+)|')
      ended[#ended + 1] = token
      ids[#ids + 1] = id
      if result then
        redis.call('HSET', KEYS[9], id, result)
        redis.call('ZADD', KEYS[10], now, id)
      end
      held[i] = 1
    elseif s.uses and s.uses.cancel and
        redis.call('ZSCORE', key_base(KEYS[1]) .. 'cancelled', parse_token(token) or '') then
      held[i] = 3
    else
      held[i] = 0
    end
  end
  if #ended > 0 then
    freed = freed + #ended
    redis.call('ZREM', KEYS[6], unpack(ended))
    redis.call('HDEL', KEYS[5], unpack(ids))
    redis.call('HDEL', KEYS[8], unpack(ids))
    redis.call('HINCRBY', KEYS[7], 'completed', #ended)
    if s.uses and s.uses.priority then redis.call('HDEL', key_base(KEYS[1]) .. 'priority', unpack(ids)) end
    -- A queue that never used unique keys pays nothing for them.
    if s.uses and s.uses.unique then
      local u = since_1_1().unique
      local k = u.keys(key_base(KEYS[1]))
      for _, id in ipairs(ids) do u.release(k, id, 'completed', now) end
    end
    -- The follow-ups a completed job staged (`stage`) are committed with it, for the movers.
    if s.uses and s.uses.children then
      local base, committed = key_base(KEYS[1]), false
      for i, token in ipairs(ended) do
        local staged = base .. 'staged:' .. token
        if redis.call('EXISTS', staged) == 1 then
          redis.call('RENAME', staged, base .. 'children:' .. ids[i])
          redis.call('PERSIST', base .. 'children:' .. ids[i])
          redis.call('ZADD', base .. 'parents', now, ids[i])
          committed = true
        end
      end
      if committed then redis.call('SPUBLISH', base .. 'wake', 'children') end
    end
  end
end

local delivered = {}
local capped = s.uses and s.uses.cap
-- Whether a manager should serve stored requests: those this call stores, unless the cap
-- leaves no room (the next lease to end wakes one), or those stored before it made room.
local wake, stored = capped and freed > 0, false
if first <= #ARGV then
  local full = false
  if redis.call('LLEN', KEYS[2]) > 0 then
    -- Older requests come first: these join them. On a capped queue with no room, a wake
    -- would find nothing to hand out.
    if capped then full = (since_1_2().room(key_base(KEYS[1])) or 1) <= 0 end
  else
    local srv = server()
    local q = srv.serving(key_base(KEYS[1]), s, now, delivered)
    -- The caller runs these scripts: it reads protocol 1.2's deliveries, wait included.
    local served = srv.serve(q, KEYS[3], requests, true)
    if served > 0 then redis.call('HINCRBY', KEYS[7], 'dispatched', served) end
    first = first + served
    full = q.room ~= nil and q.room <= 0
  end
  for i = first, #ARGV do redis.call('RPUSH', KEYS[2], ARGV[i]) end
  stored = first <= #ARGV
  wake = wake or (stored and not full)
end
if wake and not s.paused and (stored or redis.call('LLEN', KEYS[2]) > 0) and
    (s.uses and s.uses.priority and since_1_2().count_waiting(key_base(KEYS[1])) or
     redis.call('LLEN', KEYS[3])) > 0 then
  redis.call('SPUBLISH', key_base(KEYS[1]) .. 'wake', 'free')
end
return {held, delivered}
