//! Load generator for `bench/oidc` (loopback only, bounded counts).
//!
//! ```text
//! oidc-loadgen refresh --base URL --target peer|chatons --client-id ID --chains N --rotations K
//!                      [--warmup-rotations W] [--server-pid PID] [--redirect-uri URI]
//! oidc-loadgen code    --base URL --target peer|chatons --client-id ID --batch N --batches B
//!                      [--warmup-batches W] [--concurrency C] [--server-pid PID] [--redirect-uri URI]
//! oidc-loadgen prepare-chatons --base URL --client-id ID --n N --kind refresh|code [--redirect-uri URI]
//! ```
//!
//! `refresh`: obtains N refresh tokens (untimed), runs N concurrent chains of K sequential refresh
//! grants (`grant_type=refresh_token`), each using the newest refresh token of the previous answer.
//! A warm-up with its own N tokens and W rotations runs first and is not recorded.
//!
//! `code`: B times, obtains N codes + PKCE verifiers (untimed), then posts
//! `grant_type=authorization_code` once per code with C requests in flight (timed).
//!
//! Tokens and codes come from the target: `peer` mints them through the peer's loopback-only
//! `POST /__bench/mint` route; `chatons` signs up one user and runs authorize → login form →
//! code (→ token exchange for refresh tokens) with a cookie-keeping client, scope
//! `openid offline_access`, PKCE S256.
//!
//! With `--server-pid`, the server's utime+stime from `/proc/<pid>/stat` is read right before and
//! after every timed phase; the summed delta divided by the requests is the CPU per request.
//! Progress goes to stderr; the result is one JSON object on stdout.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hdrhistogram::Histogram;
use rand::Rng;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use url::Url;

type Error = Box<dyn std::error::Error + Send + Sync>;
type Result<T> = std::result::Result<T, Error>;

const MAX_CHAINS: usize = 2000;
const MAX_ROTATIONS: usize = 10_000;
const MAX_TOTAL_REQUESTS: usize = 2_000_000;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

macro_rules! fail {
    ($($t:tt)*) => { return Err(format!($($t)*).into()) };
}

// ---------------------------------------------------------------------------------------------
// Arguments
// ---------------------------------------------------------------------------------------------

struct Args {
    mode: String,
    opts: BTreeMap<String, String>,
}

impl Args {
    fn parse() -> Result<Args> {
        let mut it = std::env::args().skip(1);
        let Some(mode) = it.next() else {
            fail!("usage: oidc-loadgen refresh|code|prepare-chatons --base URL …")
        };
        let mut opts = BTreeMap::new();
        while let Some(k) = it.next() {
            let Some(name) = k.strip_prefix("--") else {
                fail!("unexpected argument {k}")
            };
            let Some(v) = it.next() else {
                fail!("--{name} needs a value")
            };
            opts.insert(name.to_string(), v);
        }
        Ok(Args { mode, opts })
    }
    fn str(&self, k: &str) -> Result<String> {
        self.opts
            .get(k)
            .cloned()
            .ok_or_else(|| format!("--{k} is required").into())
    }
    fn str_or(&self, k: &str, d: &str) -> String {
        self.opts.get(k).cloned().unwrap_or_else(|| d.to_string())
    }
    fn num(&self, k: &str, d: usize) -> Result<usize> {
        match self.opts.get(k) {
            None => Ok(d),
            Some(v) => v
                .parse()
                .map_err(|_| format!("--{k}: not a number: {v}").into()),
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Target {
    Peer,
    Chatons,
}

struct Ctx {
    target: Target,
    base: Url,
    client_id: String,
    redirect_uri: String,
    token_endpoint: Url,
    authorization_endpoint: Url,
    http: reqwest::Client,
    /// Chatons only: the cookie-keeping client of the signed-up user.
    browser: Option<Browser>,
    /// Chatons only: `prompt` of the authorization requests (`--prompt`, default none).
    prompt: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Measurements
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct Tally {
    ok: u64,
    errors: BTreeMap<String, u64>,
    first_error: Option<String>,
}

impl Tally {
    fn error(&mut self, kind: String, detail: String) {
        *self.errors.entry(kind).or_default() += 1;
        if self.first_error.is_none() {
            self.first_error = Some(detail);
        }
    }
    fn merge(&mut self, o: Tally) {
        self.ok += o.ok;
        for (k, v) in o.errors {
            *self.errors.entry(k).or_default() += v;
        }
        if self.first_error.is_none() {
            self.first_error = o.first_error;
        }
    }
    fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

fn new_hist() -> Histogram<u64> {
    // Microseconds, 1 µs .. 120 s, 3 significant digits.
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid histogram bounds")
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')').ok_or("bad /proc stat")? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = f.get(11).ok_or("short stat")?.parse()?;
    let stime: u64 = f.get(12).ok_or("short stat")?.parse()?;
    Ok(utime + stime)
}

/// utime + stime of every PostgreSQL process on the machine (backends, WAL writer, …), in
/// clock ticks: what a server backed by Postgres spends beyond its own process. Meaningful on
/// an otherwise quiet database server (the benchmark's).
fn postgres_ticks() -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim_end() == "postgres")
        })
        .filter_map(|pid| cpu_ticks(pid).ok())
        .sum()
}

struct CpuMeter {
    pid: Option<u32>,
    ticks: u64,
    self_ticks: u64,
    postgres_ticks: u64,
}

impl CpuMeter {
    fn sample(&self) -> Result<(u64, u64, u64)> {
        let server = match self.pid {
            Some(p) => cpu_ticks(p)?,
            None => 0,
        };
        Ok((server, cpu_ticks(std::process::id())?, postgres_ticks()))
    }
    fn add(&mut self, before: (u64, u64, u64), after: (u64, u64, u64)) {
        self.ticks += after.0.saturating_sub(before.0);
        self.self_ticks += after.1.saturating_sub(before.1);
        self.postgres_ticks += after.2.saturating_sub(before.2);
    }
}

fn clk_tck() -> f64 {
    std::env::var("CLK_TCK")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100.0)
}

// ---------------------------------------------------------------------------------------------
// Token endpoint requests
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct TokenResponse {
    access_token: Option<String>,
    refresh_token: Option<String>,
}

enum Outcome {
    Ok(TokenResponse),
    Err(String, String),
}

async fn post_token(http: &reqwest::Client, url: &Url, form: &[(&str, &str)]) -> Outcome {
    let resp = match http.post(url.clone()).form(form).send().await {
        Ok(r) => r,
        Err(e) => return Outcome::Err("transport".into(), e.to_string()),
    };
    let status = resp.status();
    let body = match resp.bytes().await {
        Ok(b) => b,
        Err(e) => return Outcome::Err("transport".into(), e.to_string()),
    };
    if !status.is_success() {
        let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
        return Outcome::Err(
            format!("http_{}", status.as_u16()),
            format!("HTTP {status}: {text}"),
        );
    }
    match serde_json::from_slice::<TokenResponse>(&body) {
        Ok(t) if t.access_token.is_some() => Outcome::Ok(t),
        Ok(_) => Outcome::Err(
            "no_access_token".into(),
            "answer without access_token".into(),
        ),
        Err(e) => Outcome::Err("bad_json".into(), e.to_string()),
    }
}

async fn run_chain(ctx: Arc<Ctx>, mut token: String, rotations: usize) -> (Histogram<u64>, Tally) {
    let mut h = new_hist();
    let mut t = Tally::default();
    for _ in 0..rotations {
        let start = Instant::now();
        let out = post_token(
            &ctx.http,
            &ctx.token_endpoint,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &token),
                ("client_id", &ctx.client_id),
            ],
        )
        .await;
        let us = start.elapsed().as_micros() as u64;
        match out {
            Outcome::Ok(resp) => match resp.refresh_token {
                Some(next) => {
                    h.saturating_record(us.max(1));
                    t.ok += 1;
                    token = next;
                }
                None => {
                    t.error(
                        "no_refresh_token".into(),
                        "refresh answer without refresh_token".into(),
                    );
                    break;
                }
            },
            Outcome::Err(kind, detail) => {
                t.error(kind, detail);
                // The chain cannot go on without a new refresh token.
                break;
            }
        }
    }
    (h, t)
}

async fn refresh_phase(
    ctx: &Arc<Ctx>,
    tokens: Vec<String>,
    rotations: usize,
) -> Result<(Histogram<u64>, Tally, Duration)> {
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(tokens.len());
    for tok in tokens {
        tasks.push(tokio::spawn(run_chain(ctx.clone(), tok, rotations)));
    }
    let mut hist = new_hist();
    let mut tally = Tally::default();
    for task in tasks {
        let (h, t) = task.await?;
        hist.add(h)?;
        tally.merge(t);
    }
    Ok((hist, tally, start.elapsed()))
}

async fn code_phase(
    ctx: &Arc<Ctx>,
    codes: Vec<(String, String)>,
    concurrency: usize,
) -> Result<(Histogram<u64>, Tally, Duration)> {
    let sem = Arc::new(Semaphore::new(concurrency));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(codes.len());
    for (code, verifier) in codes {
        let permit = sem.clone().acquire_owned().await?;
        let ctx = ctx.clone();
        tasks.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let out = post_token(
                &ctx.http,
                &ctx.token_endpoint,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("code_verifier", &verifier),
                    ("redirect_uri", &ctx.redirect_uri),
                    ("client_id", &ctx.client_id),
                ],
            )
            .await;
            let us = t0.elapsed().as_micros() as u64;
            drop(permit);
            (us, out)
        }));
    }
    let mut hist = new_hist();
    let mut tally = Tally::default();
    for task in tasks {
        let (us, out) = task.await?;
        match out {
            Outcome::Ok(_) => {
                hist.saturating_record(us.max(1));
                tally.ok += 1;
            }
            Outcome::Err(kind, detail) => tally.error(kind, detail),
        }
    }
    Ok((hist, tally, start.elapsed()))
}

// ---------------------------------------------------------------------------------------------
// Token / code sources
// ---------------------------------------------------------------------------------------------

fn pkce_pair() -> (String, String) {
    let mut raw = [0u8; 32];
    rand::thread_rng().fill(&mut raw);
    let verifier = URL_SAFE_NO_PAD.encode(raw);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

fn random_token(n: usize) -> String {
    let mut raw = vec![0u8; n];
    rand::thread_rng().fill(&mut raw[..]);
    URL_SAFE_NO_PAD.encode(raw)
}

async fn peer_mint(ctx: &Ctx, kind: &str, n: usize) -> Result<Value> {
    let mut url = ctx.base.join("/__bench/mint")?;
    url.query_pairs_mut()
        .append_pair("kind", kind)
        .append_pair("n", &n.to_string());
    let resp = ctx.http.post(url).send().await?;
    let status = resp.status();
    let body: Value = resp.json().await?;
    if !status.is_success() {
        fail!("peer mint failed: HTTP {status}: {body}");
    }
    Ok(body)
}

async fn get_refresh_tokens(ctx: &Ctx, n: usize) -> Result<Vec<String>> {
    match ctx.target {
        Target::Peer => {
            let v = peer_mint(ctx, "refresh", n).await?;
            let list = v["refresh_tokens"]
                .as_array()
                .ok_or("peer mint: no refresh_tokens")?;
            Ok(list
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect())
        }
        Target::Chatons => {
            let mut out = Vec::with_capacity(n);
            for (code, verifier) in chatons_codes(ctx, n).await? {
                let form = [
                    ("grant_type", "authorization_code"),
                    ("code", code.as_str()),
                    ("code_verifier", verifier.as_str()),
                    ("redirect_uri", ctx.redirect_uri.as_str()),
                    ("client_id", ctx.client_id.as_str()),
                ];
                match post_token(&ctx.http, &ctx.token_endpoint, &form).await {
                    Outcome::Ok(TokenResponse {
                        refresh_token: Some(rt),
                        ..
                    }) => out.push(rt),
                    Outcome::Ok(_) => {
                        fail!("code exchange gave no refresh_token (scope openid offline_access)")
                    }
                    Outcome::Err(_, d) => fail!("code exchange failed: {d}"),
                }
            }
            Ok(out)
        }
    }
}

async fn get_codes(ctx: &Ctx, n: usize) -> Result<Vec<(String, String)>> {
    match ctx.target {
        Target::Peer => {
            let v = peer_mint(ctx, "code", n).await?;
            let list = v["codes"].as_array().ok_or("peer mint: no codes")?;
            Ok(list
                .iter()
                .filter_map(|c| {
                    Some((
                        c["code"].as_str()?.to_string(),
                        c["verifier"].as_str()?.to_string(),
                    ))
                })
                .collect())
        }
        Target::Chatons => chatons_codes(ctx, n).await,
    }
}

// --- chatons: a cookie-keeping "browser" that signs up, logs in and collects codes ---------------

struct Browser {
    http: reqwest::Client,
    email: String,
    password: String,
}

#[derive(Debug)]
struct Form {
    action: Option<String>,
    method: String,
    fields: Vec<(String, String)>,
}

fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find(';').filter(|&e| e <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let ent = &rest[1..end];
        let ch = match ent {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ if ent.starts_with("#x") || ent.starts_with("#X") => {
                u32::from_str_radix(&ent[2..], 16)
                    .ok()
                    .and_then(char::from_u32)
            }
            _ if ent.starts_with('#') => ent[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match ch {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Attributes of one tag's inside (`<input a="b" c='d' e=f>` → [(a,b),(c,d),(e,f)]).
fn attrs(tag: &str) -> Vec<(String, String)> {
    let b = tag.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    // skip the tag name
    while i < b.len() && !b[i].is_ascii_whitespace() {
        i += 1;
    }
    while i < b.len() {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
            i += 1;
        }
        let s = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'=' && b[i] != b'/' {
            i += 1;
        }
        if s == i {
            i += 1;
            continue;
        }
        let name = tag[s..i].to_ascii_lowercase();
        let mut value = String::new();
        if i < b.len() && b[i] == b'=' {
            i += 1;
            if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
                let q = b[i];
                i += 1;
                let vs = i;
                while i < b.len() && b[i] != q {
                    i += 1;
                }
                value = decode_entities(&tag[vs..i.min(b.len())]);
                i += 1;
            } else {
                let vs = i;
                while i < b.len() && !b[i].is_ascii_whitespace() {
                    i += 1;
                }
                value = decode_entities(&tag[vs..i]);
            }
        }
        out.push((name, value));
    }
    out
}

fn get_attr<'a>(a: &'a [(String, String)], k: &str) -> Option<&'a str> {
    a.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

/// The first `<form>` of a page with its inputs (and the first named submit button).
fn parse_form(html: &str) -> Option<Form> {
    let lower = html.to_ascii_lowercase();
    let fstart = lower.find("<form")?;
    let fend = lower[fstart..]
        .find("</form")
        .map(|e| fstart + e)
        .unwrap_or(html.len());
    let ftag_end = fstart + lower[fstart..].find('>')?;
    let fa = attrs(&html[fstart + 1..ftag_end]);
    let mut form = Form {
        action: get_attr(&fa, "action").map(str::to_string),
        method: get_attr(&fa, "method")
            .unwrap_or("get")
            .to_ascii_lowercase(),
        fields: Vec::new(),
    };
    let mut pos = ftag_end;
    let mut button_taken = false;
    while pos < fend {
        let next_input = lower[pos..fend].find("<input").map(|x| x + pos);
        let next_button = lower[pos..fend].find("<button").map(|x| x + pos);
        let (at, is_button) = match (next_input, next_button) {
            (Some(a), Some(b)) if b < a => (b, true),
            (Some(a), _) => (a, false),
            (None, Some(b)) => (b, true),
            (None, None) => break,
        };
        let end = at + lower[at..].find('>')?;
        let a = attrs(&html[at + 1..end]);
        pos = end + 1;
        let Some(name) = get_attr(&a, "name") else {
            continue;
        };
        let ty = get_attr(&a, "type").unwrap_or("text").to_ascii_lowercase();
        if is_button || ty == "submit" {
            // One submit button is sent: the first, unless a later one says yes.
            let v = get_attr(&a, "value").unwrap_or("").to_ascii_lowercase();
            let yes = matches!(
                v.as_str(),
                "approve" | "allow" | "accept" | "consent" | "login" | "yes"
            );
            if button_taken && !yes {
                continue;
            }
            if button_taken {
                form.fields.retain(|(n, _)| n != name);
            }
            button_taken = true;
            if !yes && !v.is_empty() && matches!(v.as_str(), "deny" | "cancel" | "reject" | "no") {
                button_taken = false;
                continue;
            }
        }
        if (ty == "checkbox" || ty == "radio") && get_attr(&a, "checked").is_none() {
            continue;
        }
        form.fields.push((
            name.to_string(),
            get_attr(&a, "value").unwrap_or("").to_string(),
        ));
    }
    Some(form)
}

impl Browser {
    async fn new(ctx_base: &Url) -> Result<Browser> {
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(REQUEST_TIMEOUT)
            .build()?;
        let email = format!(
            "bench-{}@bench.chatons.test",
            random_token(6)
                .to_ascii_lowercase()
                .replace(['-', '_'], "x")
        );
        let password = format!("Bench-{}-pw", random_token(18));
        let resp = http
            .post(ctx_base.join("/v1/web/signup")?)
            .json(&json!({"email": email, "displayName": "Bench User", "password": password}))
            .send()
            .await?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            fail!(
                "cloud-api signup failed: HTTP {status}: {}",
                &body[..body.len().min(300)]
            );
        }
        Ok(Browser {
            http,
            email,
            password,
        })
    }

    /// authorize → (login form) → redirect with code. Returns the code.
    async fn authorize(&self, ctx: &Ctx, challenge: &str, state: &str) -> Result<String> {
        let mut url = ctx.authorization_endpoint.clone();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &ctx.client_id)
            .append_pair("redirect_uri", &ctx.redirect_uri)
            .append_pair("scope", "openid offline_access")
            .append_pair("state", state)
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256");
        if let Some(p) = &ctx.prompt {
            url.query_pairs_mut().append_pair("prompt", p);
        }
        let mut req = self.http.get(url.clone());
        for _step in 0..6 {
            let resp = req.send().await?;
            let status = resp.status();
            if status.is_redirection() {
                let loc = resp
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or("redirect without Location")?;
                let next = url.join(loc)?;
                if next.as_str().starts_with(&ctx.redirect_uri) {
                    let q: BTreeMap<String, String> = next.query_pairs().into_owned().collect();
                    if let Some(err) = q.get("error") {
                        fail!(
                            "authorization error: {err}: {}",
                            q.get("error_description").cloned().unwrap_or_default()
                        );
                    }
                    if q.get("state").map(String::as_str) != Some(state) {
                        fail!("authorization response state mismatch");
                    }
                    return Ok(q
                        .get("code")
                        .cloned()
                        .ok_or("authorization response without code")?);
                }
                url = next;
                req = self.http.get(url.clone());
                continue;
            }
            let body = resp.text().await?;
            if !status.is_success() {
                fail!(
                    "authorize step {url}: HTTP {status}: {}",
                    &body[..body.len().min(300)]
                );
            }
            let Some(mut form) = parse_form(&body) else {
                fail!("authorize step {url}: HTTP {status} page without a form");
            };
            for (k, v) in form.fields.iter_mut() {
                match k.as_str() {
                    "email" | "username" | "login" => *v = self.email.clone(),
                    "password" => *v = self.password.clone(),
                    _ => {}
                }
            }
            let action = match &form.action {
                Some(a) if !a.is_empty() => url.join(a)?,
                _ => url.clone(),
            };
            req = if form.method == "post" {
                self.http.post(action.clone()).form(&form.fields)
            } else {
                let mut a = action.clone();
                a.query_pairs_mut().extend_pairs(form.fields.iter());
                self.http.get(a)
            };
            url = action;
        }
        fail!("authorization did not reach the redirect_uri in 6 steps")
    }
}

async fn chatons_codes(ctx: &Ctx, n: usize) -> Result<Vec<(String, String)>> {
    let browser = ctx.browser.as_ref().ok_or("no browser")?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let (verifier, challenge) = pkce_pair();
        let state = random_token(12);
        let code = browser.authorize(ctx, &challenge, &state).await?;
        out.push((code, verifier));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------------

async fn discover(http: &reqwest::Client, base: &Url) -> Result<(Url, Url)> {
    let url = base.join("/.well-known/openid-configuration")?;
    let resp = http
        .get(url.clone())
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let status = resp.status();
    if !status.is_success() {
        fail!("GET {url}: HTTP {status} — OIDC endpoints not available");
    }
    let d: Value = resp
        .json()
        .await
        .map_err(|e| format!("GET {url}: not JSON ({e}) — OIDC endpoints not available"))?;
    let tok = d["token_endpoint"]
        .as_str()
        .ok_or("discovery without token_endpoint")?;
    let az = d["authorization_endpoint"]
        .as_str()
        .ok_or("discovery without authorization_endpoint")?;
    Ok((Url::parse(tok)?, Url::parse(az)?))
}

fn summary(
    label: &str,
    hist: &Histogram<u64>,
    tally: &Tally,
    wall: Duration,
    cpu: &CpuMeter,
) -> Value {
    let ms = |us: u64| (us as f64) / 1000.0;
    let secs = wall.as_secs_f64();
    let ok = tally.ok;
    let total = ok + tally.error_count();
    let tck = clk_tck();
    let per_req = |ticks: u64| {
        if ok > 0 {
            (ticks as f64 / tck) * 1e6 / ok as f64
        } else {
            0.0
        }
    };
    json!({
        "label": label,
        "requests_ok": ok,
        "requests_total": total,
        "errors": tally.errors,
        "first_error": tally.first_error,
        "timed_seconds": secs,
        "rps": if secs > 0.0 { ok as f64 / secs } else { 0.0 },
        "p50_ms": ms(hist.value_at_quantile(0.50)),
        "p90_ms": ms(hist.value_at_quantile(0.90)),
        "p99_ms": ms(hist.value_at_quantile(0.99)),
        "max_ms": ms(hist.max()),
        "mean_ms": hist.mean() / 1000.0,
        "server_cpu_us_per_req": per_req(cpu.ticks),
        "server_cpu_seconds": cpu.ticks as f64 / tck,
        "loadgen_cpu_us_per_req": per_req(cpu.self_ticks),
        "postgres_cpu_us_per_req": per_req(cpu.postgres_ticks),
    })
}

async fn run() -> Result<()> {
    let args = Args::parse()?;
    let base = Url::parse(&args.str("base")?)?;
    match base.host_str() {
        Some("127.0.0.1") | Some("localhost") | Some("[::1]") => {}
        _ => fail!("--base must be a loopback address"),
    }
    let target = match args.str_or("target", "chatons").as_str() {
        "peer" => Target::Peer,
        "chatons" => Target::Chatons,
        t => fail!("--target must be peer or chatons, not {t}"),
    };
    let chains = args.num("chains", 200)?;
    if chains == 0 || chains > MAX_CHAINS {
        fail!("--chains must be 1..{MAX_CHAINS}");
    }
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .pool_max_idle_per_host(MAX_CHAINS)
        .tcp_nodelay(true)
        .build()?;
    let (token_endpoint, authorization_endpoint) = discover(&http, &base).await?;
    let browser = if target == Target::Chatons && args.mode != "prepare-peer" {
        Some(Browser::new(&base).await?)
    } else {
        None
    };
    let ctx = Arc::new(Ctx {
        target,
        base,
        client_id: args.str("client-id")?,
        redirect_uri: args.str_or("redirect-uri", "http://127.0.0.1:9/cb"),
        token_endpoint,
        authorization_endpoint,
        http,
        browser,
        prompt: args.opts.get("prompt").cloned().filter(|p| !p.is_empty()),
    });
    let mut cpu = CpuMeter {
        pid: args.opts.get("server-pid").map(|p| p.parse()).transpose()?,
        ticks: 0,
        self_ticks: 0,
        postgres_ticks: 0,
    };

    match args.mode.as_str() {
        "refresh" => {
            let rotations = args.num("rotations", 50)?;
            let warmup = args.num("warmup-rotations", 10)?;
            if rotations == 0
                || rotations > MAX_ROTATIONS
                || chains * (rotations + warmup) > MAX_TOTAL_REQUESTS
            {
                fail!("--rotations out of bounds");
            }
            if warmup > 0 {
                eprintln!(
                    "  warm-up: {chains} chains × {warmup} rotations (tokens prepared first)"
                );
                let toks = get_refresh_tokens(&ctx, chains).await?;
                let (_, t, wall) = refresh_phase(&ctx, toks, warmup).await?;
                eprintln!(
                    "  warm-up done in {:.2}s, {} ok, errors {:?}",
                    wall.as_secs_f64(),
                    t.ok,
                    t.errors
                );
            }
            eprintln!("  preparing {chains} refresh tokens");
            let toks = get_refresh_tokens(&ctx, chains).await?;
            if toks.len() != chains {
                fail!("got {} refresh tokens, wanted {chains}", toks.len());
            }
            eprintln!("  measured: {chains} chains × {rotations} rotations");
            let before = cpu.sample()?;
            let (h, t, wall) = refresh_phase(&ctx, toks, rotations).await?;
            let after = cpu.sample()?;
            cpu.add(before, after);
            let mut s = summary("refresh", &h, &t, wall, &cpu);
            s["chains"] = json!(chains);
            s["rotations"] = json!(rotations);
            println!("{s}");
        }
        "code" => {
            let batches = args.num("batches", 5)?;
            let warmup = args.num("warmup-batches", 1)?;
            let concurrency = args.num("concurrency", 32)?.clamp(1, MAX_CHAINS);
            if batches == 0 || batches > 1000 || chains * (batches + warmup) > MAX_TOTAL_REQUESTS {
                fail!("--batches out of bounds");
            }
            let mut hist = new_hist();
            let mut tally = Tally::default();
            let mut wall = Duration::ZERO;
            for b in 0..(warmup + batches) {
                let codes = get_codes(&ctx, chains).await?;
                let measured = b >= warmup;
                let before = cpu.sample()?;
                let (h, t, w) = code_phase(&ctx, codes, concurrency).await?;
                let after = cpu.sample()?;
                eprintln!(
                    "  {} batch {}: {} codes in {:.3}s, errors {:?}",
                    if measured { "measured" } else { "warm-up" },
                    b + 1,
                    t.ok,
                    w.as_secs_f64(),
                    t.errors
                );
                if measured {
                    cpu.add(before, after);
                    hist.add(h)?;
                    tally.merge(t);
                    wall += w;
                }
            }
            let mut s = summary("code", &hist, &tally, wall, &cpu);
            s["batch"] = json!(chains);
            s["batches"] = json!(batches);
            s["concurrency"] = json!(concurrency);
            println!("{s}");
        }
        "prepare-chatons" => {
            let n = args.num("n", chains)?;
            let v = match args.str_or("kind", "refresh").as_str() {
                "refresh" => json!({"refresh_tokens": get_refresh_tokens(&ctx, n).await?}),
                "code" => json!({"codes": get_codes(&ctx, n).await?.into_iter()
                    .map(|(c, v)| json!({"code": c, "verifier": v})).collect::<Vec<_>>()}),
                k => fail!("--kind must be refresh or code, not {k}"),
            };
            println!("{v}");
        }
        m => fail!("unknown mode {m}"),
    }
    Ok(())
}

fn main() {
    // LOADGEN_THREADS (default 1): the load generator shares the machine's cores with the server,
    // so it runs on one thread unless told otherwise.
    let threads = std::env::var("LOADGEN_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1usize);
    let rt = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    };
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("oidc-loadgen: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(run()) {
        eprintln!("oidc-loadgen: error: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_login_form() {
        let html = r#"<html><form method="post" action="/oidc/authorize">
            <input type="hidden" name="csrf_token" value="a&amp;b">
            <input type='hidden' name='client_id' value='chatons-desktop'>
            <input type=email name=email>
            <input type="password" name="password" />
            <input type="checkbox" name="remember">
            <button type="submit" name="decision" value="deny">No</button>
            <button type="submit" name="decision" value="allow">Go</button>
            </form>"#;
        let f = parse_form(html).unwrap();
        assert_eq!(f.method, "post");
        assert_eq!(f.action.as_deref(), Some("/oidc/authorize"));
        assert_eq!(
            f.fields,
            vec![
                ("csrf_token".into(), "a&b".into()),
                ("client_id".into(), "chatons-desktop".into()),
                ("email".into(), "".into()),
                ("password".into(), "".into()),
                ("decision".into(), "allow".into()),
            ]
        );
    }

    #[test]
    fn reads_own_cpu_ticks() {
        assert!(cpu_ticks(std::process::id()).is_ok());
    }
}
