//! What a Redis URL names: one server, a cluster's seed nodes, or a Sentinel service.

use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo};

/// What a Redis URL names.
#[derive(Debug)]
pub(crate) enum Target {
    Single,
    Cluster(Vec<ConnectionInfo>),
    Sentinel {
        sentinels: Vec<ConnectionAddr>,
        service: String,
        /// Credentials and database of the data nodes.
        node: redis::RedisConnectionInfo,
    },
}

impl Target {
    pub fn parse(url: &str) -> std::result::Result<Target, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| "it has no scheme".to_string())?;
        let (kind, node_scheme) = match scheme {
            "redis+cluster" => ("cluster", "redis"),
            "rediss+cluster" => ("cluster", "rediss"),
            "redis+sentinel" => ("sentinel", "redis"),
            "rediss+sentinel" => ("sentinel", "rediss"),
            _ => return Ok(Target::Single),
        };
        let (userinfo, rest) = match rest.rsplit_once('@') {
            Some((userinfo, rest)) => (format!("{userinfo}@"), rest),
            None => (String::new(), rest),
        };
        let (hosts, path) = rest.split_once('/').unwrap_or((rest, ""));
        let hosts: Vec<&str> = hosts.split(',').filter(|h| !h.is_empty()).collect();
        if hosts.is_empty() {
            return Err("it names no host".into());
        }
        let info = |host: &str, path: &str| {
            format!("{node_scheme}://{userinfo}{host}/{path}")
                .into_connection_info()
                .map_err(|e| e.to_string())
        };
        if kind == "cluster" {
            if !path.is_empty() {
                return Err("a cluster has only database 0; leave the path out".into());
            }
            let nodes = hosts
                .iter()
                .map(|h| info(h, ""))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            return Ok(Target::Cluster(nodes));
        }
        let (service, db) = path.split_once('/').unwrap_or((path, ""));
        if service.is_empty() {
            return Err("it names no service (the master's name the sentinels know)".into());
        }
        let sentinels = hosts
            .iter()
            .map(|h| {
                // The sentinels' own addresses; their default port is 26379.
                let host = if h.contains(':') {
                    h.to_string()
                } else {
                    format!("{h}:26379")
                };
                format!("{node_scheme}://{host}")
                    .into_connection_info()
                    .map(|i| i.addr().clone())
                    .map_err(|e| e.to_string())
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let node = info(hosts[0], db)?.redis_settings().clone();
        Ok(Target::Sentinel {
            sentinels,
            service: service.to_string(),
            node,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_one_server_a_cluster_or_a_sentinel_service() {
        assert!(matches!(
            Target::parse("redis://h:1/2").unwrap(),
            Target::Single
        ));
        let Target::Cluster(nodes) = Target::parse("redis+cluster://u:p@a:7000,b:7001").unwrap()
        else {
            panic!("not a cluster")
        };
        assert_eq!(nodes.len(), 2);
        assert_eq!(nodes[1].redis_settings().password(), Some("p"));
        assert_eq!(nodes[1].redis_settings().username(), Some("u"));
        let Target::Sentinel {
            sentinels,
            service,
            node,
        } = Target::parse("redis+sentinel://:pw@s1,s2:5000/mymaster/3").unwrap()
        else {
            panic!("not a sentinel")
        };
        assert_eq!(service, "mymaster");
        assert_eq!(node.db(), 3);
        assert_eq!(node.password(), Some("pw"));
        assert_eq!(
            sentinels,
            vec![
                ConnectionAddr::Tcp("s1".into(), 26379),
                ConnectionAddr::Tcp("s2".into(), 5000)
            ]
        );
    }

    #[test]
    fn incomplete_urls_are_refused() {
        for url in [
            "redis+cluster://",
            "redis+cluster://a:1/3",
            "redis+sentinel://s1:26379",
            "redis+sentinel://s1:26379/",
            "no-scheme",
        ] {
            assert!(Target::parse(url).is_err(), "{url} was accepted");
        }
    }
}
