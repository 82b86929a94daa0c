//! The JSON routes of a signed-in caller are written as a table, one row a route.
//!
//! Every such handler has the same body (extract the caller and the inputs, call one application
//! function, answer its result as JSON with one status), so writing each out by hand repeated
//! ten lines per route and let an OpenAPI entry drift from what the handler does. A row names
//! what differs (the method and path, the inputs, the answer, the error statuses and the
//! application function) and [`json_routes!`] writes both the handler and its OpenAPI entry from
//! it. Routes that answer in other ways (several success statuses, no caller, a raw query) stay
//! hand-written beside their table.
//!
//! ```text
//! json_routes! { tag = "memory";
//!     /// Reads a memory.
//!     get: get "/v1/memory/{id}" [path "id";] -> 200 MemoryItemResponse [401, 404] => memory::get;
//! }
//! ```
//!
//! Inputs, in this order, each ended by `;`: `path "name";` (one path segment, passed to the
//! application function as `&str`), `ip;` (the client address), `query Type;` (an
//! [`ApiQuery`](cloud_common::extract::ApiQuery)), `raw_query Type;` (the raw query string, for
//! a query the typed reader refuses, e.g. a repeated key; `Type` documents it), `body Type;` (an
//! [`ApiJson`](cloud_common::extract::ApiJson)). An error status may carry a description:
//! `409 = "why"`. The application function is called as `f(&state, &caller, inputs…)`, or as
//! `f(&state, inputs…)` in a `json_routes! { tag = "…", public; … }` table (routes that take no
//! bearer token: signing in, the emailed links). Each table also writes the `routes()` of its
//! module, so a path is written once for the router and the document.
//!
//! `json_routes! { internal; … }` writes the service-to-service routes the same way: the
//! caller is a service holding the internal token, the function is called without a `Caller`,
//! and the routes stay out of the OpenAPI document.

macro_rules! json_routes {
    (tag = $tag:tt $(, $access:ident)?; $($routes:tt)*) => {
        json_routes!(@table [$($access)?] $tag; $($routes)*);
    };
    (@table $access:tt $tag:tt; $(
        $(#[doc = $doc:tt])*
        $name:ident: $method:ident $path:tt [$($input:tt)*]
            -> $status:tt $answer:ident [$($error:tt $(= $why:tt)?),*] => $call:path;
    )*) => {
        $(json_routes!(@access $access [$($input)*]
            { [$($doc)*] $tag $name $method $path $status $answer [$($error $(= $why)?),*] $call });)*
        json_routes!(@router $($path $method $name)*);
    };
    // Who may call: a signed-in caller (bearer token, passed on as `&caller`), or anyone.
    (@access [] [$($input:tt)*] { $($route:tt)* }) => {
        json_routes!(@inputs [$($input)*] [caller: crate::web::caller::Caller,] [&caller,] [] []
            { [security(("bearer" = [])),] $($route)* });
    };
    (@access [public] [$($input:tt)*] { $($route:tt)* }) => {
        json_routes!(@inputs [$($input)*] [] [] [] [] { [] $($route)* });
    };
    // Internal routes: the caller is a service (its token checked by `InternalCaller`), not in
    // the OpenAPI document, and the application function gets no `Caller`.
    (internal; $(
        $(#[doc = $doc:tt])*
        $name:ident: $method:ident $path:tt [$($input:tt)*] -> $answer:ident => $call:path;
    )*) => {
        $(json_routes!(@inputs [$($input)*] [] [] [] [] { internal [$($doc)*] $name $answer $call });)*
        json_routes!(@router $($path $method $name)*);
    };
    (@router $($path:tt $method:ident $name:ident)*) => {
        /// The routes of this table.
        pub fn routes() -> axum::Router<crate::AppState> {
            axum::Router::new()$(.route($path, axum::routing::$method($name)))*
        }
    };

    // The inputs become, in four lists: handler arguments, call arguments, OpenAPI `params` and
    // the OpenAPI `request_body`.
    (@inputs [path $param:tt; $($rest:tt)*] [$($arg:tt)*] [$($pass:tt)*] [$($doc:tt)*] [$($req:tt)*] $route:tt) => {
        json_routes!(@inputs [$($rest)*] [$($arg)* axum::extract::Path(id): axum::extract::Path<String>,]
            [$($pass)* &id,] [$($doc)* ($param = String, Path),] [$($req)*] $route);
    };
    (@inputs [query $query:ident; $($rest:tt)*] [$($arg:tt)*] [$($pass:tt)*] [$($doc:tt)*] [$($req:tt)*] $route:tt) => {
        json_routes!(@inputs [$($rest)*] [$($arg)* cloud_common::extract::ApiQuery(query): cloud_common::extract::ApiQuery<$query>,]
            [$($pass)* query,] [$($doc)* $query,] [$($req)*] $route);
    };
    (@inputs [ip; $($rest:tt)*] [$($arg:tt)*] [$($pass:tt)*] [$($doc:tt)*] [$($req:tt)*] $route:tt) => {
        json_routes!(@inputs [$($rest)*] [$($arg)* ip: crate::web::client_ip::ClientIp,]
            [$($pass)* ip.0,] [$($doc)*] [$($req)*] $route);
    };
    (@inputs [raw_query $query:ident; $($rest:tt)*] [$($arg:tt)*] [$($pass:tt)*] [$($doc:tt)*] [$($req:tt)*] $route:tt) => {
        json_routes!(@inputs [$($rest)*] [$($arg)* axum::extract::RawQuery(raw): axum::extract::RawQuery,]
            [$($pass)* raw.as_deref(),] [$($doc)* $query,] [$($req)*] $route);
    };
    (@inputs [body $body:ident; $($rest:tt)*] [$($arg:tt)*] [$($pass:tt)*] [$($doc:tt)*] [$($req:tt)*] $route:tt) => {
        json_routes!(@inputs [$($rest)*] [$($arg)* cloud_common::extract::ApiJson(body): cloud_common::extract::ApiJson<$body>,]
            [$($pass)* body,] [$($doc)*] [request_body = $body,] $route);
    };
    (@inputs [] [$($arg:tt)*] [$($pass:tt)*] [$($param:tt)*] [$($req:tt)*]
        { [$($security:tt)*] [$($doc:tt)*] $tag:tt $name:ident $method:ident $path:tt $status:tt
          $answer:ident [$($error:tt $(= $why:tt)?),*] $call:path }) => {
        $(#[doc = $doc])*
        #[utoipa::path($method, path = $path, tag = $tag, $($security)*
            params($($param)*), $($req)*
            responses((status = $status, body = $answer)
                $(, (status = $error, $(description = $why,)? body = crate::views::ErrorBody))*))]
        #[tracing::instrument(skip_all)]
        pub async fn $name(
            axum::extract::State(state): axum::extract::State<crate::AppState>,
            $($arg)*
        ) -> Result<(axum::http::StatusCode, axum::Json<$answer>), cloud_common::ApiError> {
            $call(&state, $($pass)*)
                .await
                .map(|answer| (json_routes!(@status $status), axum::Json(answer)))
                .map_err(cloud_common::ApiError::from)
        }
    };

    (@inputs [] [$($arg:tt)*] [$($pass:tt)*] [$($param:tt)*] [$($req:tt)*]
        { internal [$($doc:tt)*] $name:ident $answer:ident $call:path }) => {
        $(#[doc = $doc])*
        #[tracing::instrument(skip_all)]
        pub async fn $name(
            _: cloud_common::auth::InternalCaller,
            axum::extract::State(state): axum::extract::State<crate::AppState>,
            $($arg)*
        ) -> Result<axum::Json<$answer>, cloud_common::ApiError> {
            $call(&state, $($pass)*)
                .await
                .map(axum::Json)
                .map_err(cloud_common::ApiError::from)
        }
    };

    (@status 200) => { axum::http::StatusCode::OK };
    (@status 201) => { axum::http::StatusCode::CREATED };
}
