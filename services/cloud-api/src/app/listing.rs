//! The answer of a paged list: `{"<items>": [...], "nextCursor": "..."}`.
//!
//! Every list answers the same two fields, but under its own key for the items (the first
//! system's wire format, which the desktop reads), so a generic type cannot name them. Each
//! list declares its answer with [`page_response!`], which also lets a store page become that
//! answer with `.into()` (see `crate::paging::page_views`).

macro_rules! page_response {
    ($(#[doc = $doc:tt])* $name:ident { $items:ident: $view:ident }) => {
        $(#[doc = $doc])*
        #[derive(Debug, serde::Serialize, utoipa::ToSchema)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            pub $items: Vec<$view>,
            pub next_cursor: Option<String>,
        }

        impl From<(Vec<$view>, Option<String>)> for $name {
            fn from(($items, next_cursor): (Vec<$view>, Option<String>)) -> Self {
                Self { $items, next_cursor }
            }
        }
    };
}

/// The query of a paged list: its own filters (each an optional string), then `limit` (1 to
/// `max`, `default` when absent, described by `doc`) and `cursor`. [`page_query!`] also writes
/// `page()`, which reads the two into a store page request (400 on a bad value).
macro_rules! page_query {
    ($(#[doc = $doc:tt])* $name:ident {
        $($(#[$filter_meta:meta])* $filter:ident,)*
    } limit $limit_doc:tt default $default:tt max $max:tt) => {
        $(#[doc = $doc])*
        #[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
        #[into_params(parameter_in = Query)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            $($(#[$filter_meta])* pub $filter: Option<String>,)*
            #[doc = $limit_doc]
            #[param(value_type = Option<u32>, minimum = 1, maximum = $max)]
            pub limit: Option<String>,
            /// Opaque cursor from a previous page's `nextCursor`.
            pub cursor: Option<String>,
        }

        impl $name {
            /// The page asked for (400 for a `limit` out of range or a cursor not ours).
            pub fn page(&self) -> Result<crate::domain::PageReq, crate::domain::DomainError> {
                let (limit, cursor) = (self.limit.as_deref(), self.cursor.as_deref());
                crate::paging::page_req(limit, cursor, $default, $max)
            }
        }
    };
}
