//! The runtime benchmark (`bench/runtime/run`; ignored in normal test runs): two
//! runtime-headless workers on Postgres behind the real cloud-api, a fake provider and a
//! recording sink. Measures acquire (reuse) and prompt-dispatch throughput and latency as a
//! client sees them, and how long a killed owner's lease takes to be taken over.
//! Writes a Markdown section to `$RUNTIME_BENCH_OUT`.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{Client, Cluster, TestUser};

const CLIENTS: usize = 16;
const USERS: usize = 8;

fn env_secs(name: &str, default: u64) -> Duration {
    Duration::from_secs(
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default),
    )
}

struct Stats {
    count: usize,
    errors: usize,
    per_sec: f64,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

fn stats(mut lat: Vec<Duration>, errors: usize, elapsed: Duration) -> Stats {
    lat.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let pick = |q: f64| {
        if lat.is_empty() {
            return 0.0;
        }
        let i = ((lat.len() as f64 * q).ceil() as usize).clamp(1, lat.len()) - 1;
        ms(lat[i])
    };
    Stats {
        count: lat.len(),
        errors,
        per_sec: lat.len() as f64 / elapsed.as_secs_f64(),
        p50: pick(0.50),
        p90: pick(0.90),
        p99: pick(0.99),
        max: lat.last().map(|d| ms(*d)).unwrap_or(0.0),
    }
}

/// Runs `CLIENTS` loops for `duration`; each call is `op(client index, iteration)`.
async fn hammer<F, Fut>(duration: Duration, op: F) -> Stats
where
    F: Fn(usize, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let start = Instant::now();
    let deadline = start + duration;
    let tasks = (0..CLIENTS).map(|c| {
        let op = op.clone();
        tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0;
            let mut i = 0;
            while Instant::now() < deadline {
                let t = Instant::now();
                if op(c, i).await {
                    lat.push(t.elapsed());
                } else {
                    errors += 1;
                }
                i += 1;
            }
            (lat, errors)
        })
    });
    let mut lat = Vec::new();
    let mut errors = 0;
    for r in futures_util::future::join_all(tasks).await {
        let (l, e) = r.expect("bench task");
        lat.extend(l);
        errors += e;
    }
    stats(lat, errors, start.elapsed())
}

#[derive(Clone, Copy)]
enum Read {
    /// The `get_state` command (what the desktop polls).
    State,
    /// `GET /v1/runtime/sessions/{id}`: state and every message.
    Snapshot,
}

type Sessions = std::sync::Arc<Vec<(TestUser, String, String)>>;

/// `CLIENTS` loops of one read, spread over the sessions and both workers.
async fn reads(
    sessions: &Sessions,
    http: &reqwest::Client,
    bases: &[String; 2],
    read: Read,
    duration: Duration,
) -> Stats {
    let (sessions, http, bases) = (sessions.clone(), http.clone(), bases.clone());
    hammer(duration, move |c, i| {
        let (sessions, http, bases) = (sessions.clone(), http.clone(), bases.clone());
        async move {
            let (user, _, id) = &sessions[(c + i) % sessions.len()];
            let client = Client {
                http,
                base: bases[i % 2].clone(),
                token: user.token.clone(),
            };
            match read {
                Read::State => client.command(id, json!({"type": "get_state"})).await.0 == 200,
                Read::Snapshot => client.get(id).await.0 == 200,
            }
        }
    })
    .await
}

/// CPU time (utime + stime, clock ticks) of the processes on the machine, by command name.
fn cpu_by_command() -> std::collections::HashMap<String, u64> {
    let mut out = std::collections::HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for pid in dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok()) {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let f: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        *out.entry(stat[open + 1..close].to_owned()).or_default() += ticks(11) + ticks(12);
    }
    out
}

/// Where the machine's CPU went between two [`cpu_by_command`] samples, as a share of all
/// cores: the services, PostgreSQL, this process (clients, fake provider, sink), the rest.
fn cpu_split(
    before: &std::collections::HashMap<String, u64>,
    after: &std::collections::HashMap<String, u64>,
    wall: Duration,
) -> String {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let tck = 100.0; // USER_HZ on Linux
    let me = std::fs::read_to_string("/proc/self/comm").unwrap_or_default();
    let me = me.trim_end();
    let mut groups: Vec<(&str, f64)> = ["runtime-headless", "cloud-api", "postgres", me, "other"]
        .iter()
        .map(|g| (*g, 0.0))
        .collect();
    // The kernel keeps 15 bytes of a command name: `runtime-headless` is `runtime-headles`.
    let same = |group: &str, comm: &str| group.get(..15).unwrap_or(group) == comm;
    for (name, t) in after {
        let used = t.saturating_sub(before.get(name).copied().unwrap_or(0)) as f64 / tck;
        let i = groups.iter().position(|(g, _)| same(g, name)).unwrap_or(4);
        groups[i].1 += used;
    }
    let total = wall.as_secs_f64() * cores;
    groups
        .iter()
        .map(|(g, secs)| {
            let g = if *g == me {
                "bench process (clients, fake provider, sink)"
            } else {
                g
            };
            format!("{g} {:.0} %", 100.0 * secs / total)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn row(name: &str, s: &Stats) -> String {
    format!(
        "| {name} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} |\n",
        s.count, s.errors, s.per_sec, s.p50, s.p90, s.p99, s.max
    )
}

#[tokio::test]
#[ignore = "benchmark: run with bench/runtime/run"]
async fn runtime_bench() {
    let duration = env_secs("RUNTIME_BENCH_SECONDS", 10);
    let cluster = Cluster::new(&[("CHATONS_RUNTIME_DB_POOL_SIZE", "10")]).await;
    let a = cluster.worker("worker-a").await;
    let b = cluster.worker("worker-b").await;
    let bases = [a.url(), b.url()];

    // Users, each with 3 sessions (the default plan's limit), created across both workers.
    let mut users: Vec<TestUser> = Vec::new();
    let mut sessions: Vec<(TestUser, String, String)> = Vec::new();
    let mut create_lat = Vec::new();
    for u in 0..USERS {
        let user = cluster.user().await;
        for s in 0..3 {
            let conversation = cluster.conv(&user).await;
            let c = Client::new(&bases[(u + s) % 2], &user.token);
            let t = Instant::now();
            let (status, body) = c
                .acquire(&user, &conversation, Some("chunks=2,delay=0"))
                .await;
            create_lat.push(t.elapsed());
            assert_eq!(status, 201, "{body}");
            sessions.push((
                user.clone(),
                conversation,
                body["id"].as_str().unwrap().to_owned(),
            ));
        }
        users.push(user);
    }
    let create_time: Duration = create_lat.iter().sum();
    let creates = stats(create_lat, 0, create_time);

    let sessions = std::sync::Arc::new(sessions);
    let http = reqwest::Client::new();

    // Warm-up (connections, caches).
    {
        let (sessions, http, bases) = (sessions.clone(), http.clone(), bases.clone());
        hammer(Duration::from_secs(2), move |c, i| {
            let (sessions, http, bases) = (sessions.clone(), http.clone(), bases.clone());
            async move {
                let (user, conversation, _) = &sessions[(c + i) % sessions.len()];
                let client = Client {
                    http,
                    base: bases[i % 2].clone(),
                    token: user.token.clone(),
                };
                client.acquire(user, conversation, None).await.0 == 200
            }
        })
        .await;
    }

    let acquire = {
        let (sessions, http, bases) = (sessions.clone(), http.clone(), bases.clone());
        hammer(duration, move |c, i| {
            let (sessions, http, bases) = (sessions.clone(), http.clone(), bases.clone());
            async move {
                let (user, conversation, _) = &sessions[(c * 7 + i) % sessions.len()];
                let client = Client {
                    http,
                    base: bases[(c + i) % 2].clone(),
                    token: user.token.clone(),
                };
                client.acquire(user, conversation, None).await.0 == 200
            }
        })
        .await
    };

    // The grant check alone (what every runtime call spends in cloud-api), for reference.
    let grant = {
        let (sessions, http, api, token) = (
            sessions.clone(),
            http.clone(),
            cluster.api.base.clone(),
            cluster.token.clone(),
        );
        hammer(duration, move |c, i| {
            let (sessions, http, api, token) =
                (sessions.clone(), http.clone(), api.clone(), token.clone());
            async move {
                let (user, conversation, _) = &sessions[(c * 3 + i) % sessions.len()];
                http.post(format!("{api}/v1/internal/runtime/access"))
                    .bearer_auth(&token)
                    .json(
                        &json!({"accessToken": user.token, "cloudInstanceId": user.instance,
                                  "projectId": user.project, "conversationId": conversation}),
                    )
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            }
        })
        .await
    };

    let cpu_before = cpu_by_command();
    let dispatch_start = Instant::now();
    let dispatch = {
        let (sessions, http, bases) = (sessions.clone(), http.clone(), bases.clone());
        hammer(duration, move |c, i| {
            let (sessions, http, bases) = (sessions.clone(), http.clone(), bases.clone());
            async move {
                let (user, _, id) = &sessions[(c * 5 + i) % sessions.len()];
                let client = Client {
                    http,
                    base: bases[(c + i) % 2].clone(),
                    token: user.token.clone(),
                };
                let (status, body) = client
                    .command(
                        id,
                        json!({"id": format!("b-{c}-{i}"), "type": "prompt", "message": "bench"}),
                    )
                    .await;
                status == 200 && body["success"] == true
            }
        })
        .await
    };
    let dispatch_cpu = cpu_split(&cpu_before, &cpu_by_command(), dispatch_start.elapsed());

    // Reads while the owners still work off the dispatched turns (the loaded case) …
    let busy_state = reads(
        &sessions,
        &http,
        &bases,
        Read::State,
        Duration::from_secs(3),
    )
    .await;

    // Queue drain: how fast the two owners work off what was dispatched.
    let queued: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM runtime_turns WHERE status IN ('queued','running')",
    )
    .fetch_one(&cluster.db.pool)
    .await
    .unwrap();
    let total_turns: i64 = sqlx::query_scalar("SELECT count(*) FROM runtime_turns")
        .fetch_one(&cluster.db.pool)
        .await
        .unwrap();
    let drain_start = Instant::now();
    loop {
        let left: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM runtime_turns WHERE status IN ('queued','running')",
        )
        .fetch_one(&cluster.db.pool)
        .await
        .unwrap();
        if left == 0 || drain_start.elapsed() > Duration::from_secs(300) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drain = drain_start.elapsed();
    let outcomes: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status, count(*) FROM runtime_turns GROUP BY status ORDER BY status",
    )
    .fetch_all(&cluster.db.pool)
    .await
    .unwrap();

    // … and once the queue is empty (each session now holds ~2 × its turns in messages).
    let idle_state = reads(&sessions, &http, &bases, Read::State, duration).await;
    let snapshot = reads(&sessions, &http, &bases, Read::Snapshot, duration).await;

    // Lease takeover after kill -9 of the owner (TTL 3 s, heartbeat every TTL/3).
    let mut takeovers = Vec::new();
    for round in 0..3 {
        let owner = format!("victim-{round}");
        let victim = cluster.worker(&owner).await;
        let user = &users[round % users.len()];
        // Free a slot: stop one of this user's sessions, then create one on the victim.
        let (_, _, old) = sessions
            .iter()
            .filter(|(u, _, _)| u.token == user.token)
            .nth(round / users.len())
            .unwrap();
        let c = Client::new(&victim.url(), &user.token);
        let _ = c.delete(old).await;
        let conversation = cluster.conv(user).await;
        let id = c.session_id(user, &conversation, None).await;
        // Kill right after a heartbeat would be the worst case; kill at a random point.
        tokio::time::sleep(Duration::from_millis(300 + 400 * round as u64)).await;
        let lease_left: f64 = sqlx::query_scalar(
            "SELECT EXTRACT(EPOCH FROM (lease_expires_at - now()))::float8 FROM runtime_sessions WHERE id = $1",
        )
        .bind(&id)
        .fetch_one(&cluster.db.pool)
        .await
        .unwrap();
        victim.signal("KILL");
        let killed = Instant::now();
        loop {
            let owner_now: Option<String> =
                sqlx::query_scalar("SELECT owner_id FROM runtime_sessions WHERE id = $1")
                    .bind(&id)
                    .fetch_one(&cluster.db.pool)
                    .await
                    .unwrap();
            if owner_now.as_deref() != Some(owner.as_str()) {
                break;
            }
            assert!(killed.elapsed() < Duration::from_secs(30), "no takeover");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        takeovers.push((killed.elapsed(), lease_left));
        drop(victim);
    }

    let mut md = String::new();
    md.push_str("### runtime-headless\n\n");
    md.push_str(&format!(
        "Two `runtime-headless` workers (release build) on one Postgres, behind the real `cloud-api` (the grant is enforced on every call through the runtime's one-second grant cache, refreshed ahead from cloud-api), fake OpenAI-compatible provider answering every turn at once, {CLIENTS} concurrent keep-alive clients alternating between the workers, {USERS} users × 3 sessions, {}s per phase, load generator on the same 2-core machine. Latencies in ms as the client sees them. While prompts are dispatched the two owners run the queued turns (agent run, messages, transcript sync to cloud-api, realtime events) on the same cores. No peer is named; targets: acquire, dispatch and snapshot p99 < 10 ms, ≥ 2,000 dispatches/s, takeover ≤ TTL + 1 s.\n\n",
        duration.as_secs()
    ));
    md.push_str("| operation | ok | errors | req/s | p50 | p90 | p99 | max |\n|---|---|---|---|---|---|---|---|\n");
    md.push_str(&row("acquire (create, sequential)", &creates));
    md.push_str(&row("acquire (reuse)", &acquire));
    md.push_str(&row("prompt dispatch (queue a turn)", &dispatch));
    md.push_str(&row("get_state command (queue draining)", &busy_state));
    md.push_str(&row("get_state command (queue empty)", &idle_state));
    md.push_str(&row(
        "snapshot GET /v1/runtime/sessions/{id} (queue empty)",
        &snapshot,
    ));
    md.push_str(&row("cloud-api grant check alone (reference)", &grant));
    md.push_str(&format!(
        "\nCPU of the {} cores while prompts were dispatched (and the owners ran them): {dispatch_cpu}.\n",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    ));
    md.push_str(&format!(
        "\nQueue: {total_turns} turns dispatched; {queued} were still queued or running when dispatching stopped and drained in {:.1} s by the two owners (outcomes: {}).\n\n",
        drain.as_secs_f64(),
        outcomes.iter().map(|(s, n)| format!("{s} {n}")).collect::<Vec<_>>().join(", ")
    ));
    md.push_str("| lease takeover after `kill -9` (TTL 3 s) | kill → new owner (s) | lease time left at kill (s) |\n|---|---|---|\n");
    for (i, (t, left)) in takeovers.iter().enumerate() {
        md.push_str(&format!(
            "| round {} | {:.2} | {:.2} |\n",
            i + 1,
            t.as_secs_f64(),
            left
        ));
    }
    println!("{md}");
    if let Ok(path) = std::env::var("RUNTIME_BENCH_OUT") {
        std::fs::write(path, md).expect("write bench output");
    }
}
