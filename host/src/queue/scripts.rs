//! The Lua scripts, each in its own file beside this one, each preceded by `lib.lua` (the
//! helpers they share). Every state change of a job is one of these scripts, so it happens
//! whole or not at all. They are sent by SHA and loaded again by the redis crate when Redis
//! answers NOSCRIPT (after a restart).

use std::sync::LazyLock;

use redis::Script;

use crate::queue::backend::Conn;

macro_rules! script {
    ($name:ident, $file:literal) => {
        pub(crate) static $name: LazyLock<Script> = LazyLock::new(|| {
            Script::new(concat!(
                include_str!("scripts/lib.lua"),
                include_str!(concat!("scripts/", $file))
            ))
        });
    };
}

script!(OPEN, "open.lua");
script!(PUSH, "push.lua");
script!(EXCHANGE, "exchange.lua");
script!(DISPATCH, "dispatch.lua");
script!(FAIL, "fail.lua");
script!(RELEASE, "release.lua");
script!(RENEW, "renew.lua");
script!(REAP, "reap.lua");
script!(DEAD, "dead.lua");

/// Loads every script. Called when a queue is opened, so that the first calls find their
/// script: a NOSCRIPT answer makes the redis crate load and resend, and two calls resent that
/// way may swap places, which would break the order of one client's requests. On one server
/// this is one round trip; on a cluster each `SCRIPT LOAD` goes to every node.
pub(crate) async fn load_all(con: &mut Conn) -> redis::RedisResult<()> {
    let all = [
        &*OPEN, &*PUSH, &*EXCHANGE, &*DISPATCH, &*FAIL, &*RELEASE, &*RENEW, &*REAP, &*DEAD,
    ];
    if let Conn::Cluster(_) = con {
        for script in all {
            script.load_async(con).await?;
        }
        return Ok(());
    }
    let mut pipe = redis::pipe();
    for script in all {
        pipe.load_script(script).ignore();
    }
    pipe.query_async(con).await
}
