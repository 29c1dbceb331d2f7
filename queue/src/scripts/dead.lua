-- dead: retry or purge dead jobs: those named by id, or a chunk of the oldest. Every call
-- does work for the entries it names only (at most a chunk), so retrying or purging a dead
-- list of any length is many short calls, never one long one.
-- KEYS[1] meta  KEYS[2] dead_at  KEYS[3] waiting  KEYS[4] jobs  KEYS[5] errors  KEYS[6] requests
-- ARGV[1] the caller's protocol version  ARGV[2] "retry" or "purge"
-- ARGV[3] "ids", then the job ids (an entry that is not a token is named by itself); or
-- ARGV[3] "oldest", ARGV[4] skip, ARGV[5] count: the entries from rank `skip` (oldest
-- first), `count` of them. A caller going through the whole list passes back the skip the
-- last call returned (the entries a retry left in place).
-- A retried job joins the tail of the queue with its attempts started again (as ID|00|MAX);
-- its last error stays readable until it completes. Poison (code "poison", or an entry that
-- is not a token) is never retried: purge it. A job with a unique key takes its key again, and is
-- refused while another job holds it; a purged one lets go of its key.
-- Returns {how many were retried or purged, {id, why it was refused, ...}, the next skip}.
-- Errors: SQUE_NOQUEUE, SQUE_PROTOCOL, SQUE_INVALID.
local s = open_call(KEYS[1], ARGV[1])
-- Purging deletes: only the word itself does it, never a misspelt "retry".
if ARGV[2] ~= 'retry' and ARGV[2] ~= 'purge' then
  return redis.error_reply('SQUE_INVALID dead takes "retry" or "purge", not ' .. string.format('%q', string.sub(ARGV[2] or '', 1, 20)))
end
local retry = ARGV[2] == 'retry'
local done, refused, skip = 0, {}, 0
local unique = since_1_1().unique.keys(key_base(KEYS[1]))
local now = now_ms()

-- Retries or purges one entry; returns nil, or why not.
local function act(entry, e)
  local id, _, max = parse_token(entry)
  if retry then
    if not id then return 'it is not a job (entry ' .. string.format('%q', string.sub(entry, 1, 80)) .. '): purge it' end
    if e and e.code == 'poison' then
      return 'it is poison (' .. tostring(e.message) .. '): no retry can deliver it; purge it'
    end
    local held = since_1_1().unique.retake(unique, id, now)
    if held then return held end
    redis.call('ZREM', KEYS[2], entry)
    -- Attempts "00": a first attempt again (token ID|1|MAX), but not a first push, so that
    -- no wait is measured from the push record of its id (`push_times`).
    local list = s.uses and s.uses.priority and since_1_2().list_of(key_base(KEYS[1]), id) or KEYS[3]
    -- Its attempts give out the tokens of its first life again: `serve` deletes what an
    -- attempt of each staged (`stage`) as it gives the token out, so none is committed.
    redis.call('RPUSH', list, id .. '|00|' .. max)
  else
    redis.call('ZREM', KEYS[2], entry)
    redis.call('HDEL', KEYS[4], id or entry)
    redis.call('HDEL', KEYS[5], id or entry)
    if s.uses and s.uses.priority then redis.call('HDEL', key_base(KEYS[1]) .. 'priority', id or entry) end
    since_1_1().unique.release(unique, id or entry, 'gone', 0)
  end
  done = done + 1
  return nil
end

local function record_of(entry)
  local raw = redis.call('HGET', KEYS[5], parse_token(entry) or entry)
  if not raw then return nil end
  local ok, e = pcall(cjson.decode, raw)
  if ok and type(e) == 'table' then return e end
  return nil
end

if ARGV[3] == 'ids' then
  for i = 4, #ARGV do
    local entry, e = graveyard().find({dead = KEYS[2], errors = KEYS[5]}, ARGV[i])
    local why
    if not entry then why = 'it is not in the dead list' else why = act(entry, e) end
    if why then
      refused[#refused + 1] = ARGV[i]
      refused[#refused + 1] = why
    end
  end
elseif ARGV[3] == 'oldest' then
  skip = tonumber(ARGV[4])
  local count = tonumber(ARGV[5])
  if not skip or not count or count < 1 then
    return redis.error_reply('SQUE_INVALID dead "oldest" takes a skip and a count')
  end
  local entries = redis.call('ZRANGE', KEYS[2], skip, skip + count - 1)
  for _, entry in ipairs(entries) do
    if act(entry, record_of(entry)) then skip = skip + 1 end
  end
else
  return redis.error_reply('SQUE_INVALID dead takes "ids" or "oldest"')
end
if retry and done > 0 and redis.call('LLEN', KEYS[6]) > 0 then
  redis.call('SPUBLISH', key_base(KEYS[1]) .. 'wake', 'retried')
end
return {done, refused, skip}
