//! The gateway's HTTP surface: the WebSocket upgrade at `/v1/ws`, and the friendship and
//! sharing endpoints under `/v1/me`. [`router`] is merged into the service's router.

use crate::clock;
use crate::friends::{FriendError, FriendSetting, Precision, RequestOutcome, Sharing};
use crate::gateway::Gateway;
use crate::http::{ApiError, bearer_token, required_bearer_token};
use crate::session::{self, Start};
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The friend store's refusals as HTTP errors.
fn from_friends(err: FriendError) -> ApiError {
    match err {
        FriendError::SelfRequest => ApiError::invalid("user_id", err.to_string()),
        FriendError::LimitReached(_) => {
            ApiError::new(StatusCode::CONFLICT, "limit_reached", err.to_string())
        }
        FriendError::ReadOnly => ApiError::new(StatusCode::CONFLICT, "read_only", err.to_string()),
        FriendError::Unavailable(detail) => {
            tracing::warn!(error = %detail, "friend store unavailable");
            ApiError::unavailable("the friend store is unavailable; retry later")
        }
    }
}

/// The authenticated user of a request (`Authorization: Bearer <token>`).
#[derive(Clone, Copy, Debug)]
pub struct Me(pub u64);

impl FromRequestParts<Gateway> for Me {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, gateway: &Gateway) -> Result<Self, ApiError> {
        let token = required_bearer_token(&parts.headers)?;
        gateway
            .authenticate(token)
            .map(Me)
            .map_err(ApiError::unauthorized)
    }
}

/// The gateway's routes, with its state applied.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use nearby_ws_gateway::{api, Authenticator, Backend, Gateway, GatewayConfig, friends::FriendStore};
/// struct Nobody;
/// impl Authenticator for Nobody {
///     fn authenticate(&self, _: &str) -> Result<u64, String> { Err("no".into()) }
/// }
/// let gateway = Gateway::start(GatewayConfig::default(), Nobody, FriendStore::memory(), Backend::Local, None)
///     .await.unwrap();
/// let _router: axum::Router = api::router(gateway);
/// # });
/// ```
pub fn router(gateway: Gateway) -> Router {
    Router::new()
        .route("/v1/ws", get(connect))
        .route("/v1/gateway", get(locate))
        .route("/v1/me/friends", get(list_friends))
        .route(
            "/v1/me/friends/{user_id}",
            put(accept_friend).delete(remove_friend),
        )
        .route("/v1/me/friend-requests", get(list_requests))
        .route("/v1/me/friend-requests/{user_id}", post(request_friend))
        .route("/v1/me/sharing", get(get_sharing).put(set_sharing))
        .route(
            "/v1/me/friends/{user_id}/sharing",
            get(get_friend_sharing)
                .put(set_friend_sharing)
                .delete(clear_friend_sharing),
        )
        .with_state(gateway)
}

/// The `?token=` query parameter of the upgrade.
#[derive(Deserialize)]
pub struct TokenQuery {
    /// A bearer token.
    pub token: Option<String>,
}

/// `GET /v1/ws`: authenticates (header or `?token=`), loads the user's friends, upgrades.
#[utoipa::path(get, path = "/v1/ws", tag = "friends",
    params(("token" = Option<String>, Query, description = "bearer token, for clients that cannot set the Authorization header")),
    responses(
        (status = 101, description = "switched to the WebSocket protocol (see the README for the messages)"),
        (status = 307, description = "another node serves this user: reconnect to the `Location` (the query string is kept)", body = GatewayNode),
        (status = 400, description = "not a WebSocket upgrade request"),
        (status = 401, description = "missing, forged or expired token"),
        (status = 429, description = "too many connection attempts by this user: retry after `Retry-After` seconds"),
        (status = 503, description = "the friend store is unavailable")),
    security(("bearer" = [])))]
pub async fn connect(
    State(gateway): State<Gateway>,
    uri: Uri,
    headers: HeaderMap,
    query: Result<Query<TokenQuery>, QueryRejection>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let from_query = query.ok().and_then(|Query(q)| q.token);
    let token = match bearer_token(&headers)? {
        Some(token) => token.to_owned(),
        None => from_query.ok_or_else(|| {
            gateway
                .metrics()
                .unauthorized
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            ApiError::unauthorized(
                "a token is required: Authorization: Bearer <token> or ?token=<token>",
            )
        })?,
    };
    let user = gateway.authenticate(&token).map_err(|message| {
        gateway
            .metrics()
            .unauthorized
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ApiError::unauthorized(message)
    })?;
    let membership = gateway.membership();
    if !membership.owns(user) {
        // Another node serves this user: send the client there, keeping its query string
        // (a browser's token travels in it).
        let owner = membership.owner(user);
        let mut location = owner.websocket_url();
        if let Some(query) = uri.query() {
            location.push('?');
            location.push_str(query);
        }
        gateway
            .metrics()
            .redirected
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let body = Json(GatewayNode {
            node_id: owner.id().to_owned(),
            url: owner.websocket_url(),
        });
        return Ok((
            StatusCode::TEMPORARY_REDIRECT,
            [(axum::http::header::LOCATION, location)],
            body,
        )
            .into_response());
    }
    let upgrade = upgrade.map_err(|rejection| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "not_websocket",
            format!("this endpoint needs a WebSocket upgrade: {rejection}"),
        )
    })?;
    if let Err(wait) = gateway.users().try_connect(user, std::time::Instant::now()) {
        gateway
            .metrics()
            .connects_limited
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
        let mut response = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many connection attempts; retry in {seconds} s"),
        )
        .into_response();
        response.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from(seconds),
        );
        return Ok(response);
    }
    // The watcher's cursor before the read: what changes after it is applied by the session
    // once subscribed (see `crate::audience`).
    let log_cursor = gateway.audience().cursor();
    let audience = gateway
        .friends()
        .audience(user)
        .await
        .map_err(from_friends)?;
    let start = Start {
        user,
        audience,
        log_cursor,
    };
    let config = gateway.config().clone();
    Ok(upgrade
        .read_buffer_size(config.read_buffer_bytes)
        .write_buffer_size(config.write_buffer_bytes)
        .max_write_buffer_size(config.write_buffer_bytes.max(config.max_message_bytes) * 16)
        .max_message_size(config.max_message_bytes)
        .max_frame_size(config.max_message_bytes)
        .on_upgrade(move |socket| {
            // Counted from the upgrade, so a drain that starts now waits for this session.
            let active = gateway.session_started();
            async move {
                session::run(gateway, start, socket).await;
                drop(active);
            }
        }))
}

/// The node that serves a user's WebSocket.
#[derive(Serialize, ToSchema)]
pub struct GatewayNode {
    /// The node's id.
    node_id: String,
    /// Its WebSocket URL (`ws://` or `wss://`, path `/v1/ws`).
    url: String,
}

/// `GET /v1/gateway`: the node that serves the user's WebSocket (the owner of the user id
/// among the live nodes; this node when it runs alone).
#[utoipa::path(get, path = "/v1/gateway", tag = "friends",
    responses(
        (status = 200, description = "where to open the user's WebSocket", body = GatewayNode),
        (status = 401, description = "missing or invalid token")),
    security(("bearer" = [])))]
pub async fn locate(State(gateway): State<Gateway>, Me(me): Me) -> Json<GatewayNode> {
    let owner = gateway.membership().owner(me);
    Json(GatewayNode {
        node_id: owner.id().to_owned(),
        url: owner.websocket_url(),
    })
}

fn user_id(raw: &str) -> Result<u64, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::invalid("user_id", "user_id must be an unsigned 64-bit integer"))
}

/// Tells both users' live sessions (every node) that their friendships changed.
async fn notify_pair(gateway: &Gateway, a: u64, b: u64) {
    for user in [a, b] {
        if let Err(err) = gateway.notify_changed(user).await {
            // The change is committed; sessions pick it up at their next reload or reconnect.
            tracing::warn!(user, error = %err, "could not notify live sessions of a friendship change");
        }
    }
}

/// Schema of a `/v1/me` body.
#[derive(Serialize, ToSchema)]
pub struct Friends {
    /// Friends' user ids, ascending.
    friends: Vec<u64>,
}

/// `GET /v1/me/friends`: the user's friends.
#[utoipa::path(get, path = "/v1/me/friends", tag = "friends",
    responses(
        (status = 200, description = "the user's friends", body = Friends),
        (status = 401, description = "missing or invalid token"),
        (status = 503, description = "the friend store is unavailable")),
    security(("bearer" = [])))]
pub async fn list_friends(
    State(gateway): State<Gateway>,
    Me(me): Me,
) -> Result<Json<Friends>, ApiError> {
    let friends = gateway.friends().friends(me).await.map_err(from_friends)?;
    Ok(Json(Friends { friends }))
}

/// Schema of a `/v1/me` body.
#[derive(Serialize, ToSchema)]
pub struct Status {
    /// `pending` or `friends`.
    status: &'static str,
}

/// `POST /v1/me/friend-requests/{user_id}`: asks a user to be friends.
#[utoipa::path(post, path = "/v1/me/friend-requests/{user_id}", tag = "friends",
    params(("user_id" = u64, Path, description = "the user to ask")),
    responses(
        (status = 202, description = "asked; waiting for them to accept", body = Status),
        (status = 200, description = "they had asked you too, or you are already friends", body = Status),
        (status = 400, description = "invalid user id, or yourself"),
        (status = 401, description = "missing or invalid token"),
        (status = 409, description = "too many friends or pending requests"),
        (status = 503, description = "the friend store is unavailable")),
    security(("bearer" = [])))]
pub async fn request_friend(
    State(gateway): State<Gateway>,
    Me(me): Me,
    Path(other): Path<String>,
) -> Result<Response, ApiError> {
    let other = user_id(&other)?;
    let outcome = gateway
        .friends()
        .request(me, other)
        .await
        .map_err(from_friends)?;
    Ok(match outcome {
        RequestOutcome::Friends => {
            notify_pair(&gateway, me, other).await;
            (StatusCode::OK, Json(Status { status: "friends" })).into_response()
        }
        RequestOutcome::AlreadyFriends => {
            (StatusCode::OK, Json(Status { status: "friends" })).into_response()
        }
        _ => (StatusCode::ACCEPTED, Json(Status { status: "pending" })).into_response(),
    })
}

/// Schema of a `/v1/me` body.
#[derive(Serialize, ToSchema)]
pub struct RequestList {
    /// Users who asked this user, ascending.
    incoming: Vec<u64>,
    /// Users this user asked, ascending.
    outgoing: Vec<u64>,
}

/// `GET /v1/me/friend-requests`: pending requests both ways.
#[utoipa::path(get, path = "/v1/me/friend-requests", tag = "friends",
    responses(
        (status = 200, description = "pending requests to and from the user", body = RequestList),
        (status = 401, description = "missing or invalid token"),
        (status = 503, description = "the friend store is unavailable")),
    security(("bearer" = [])))]
pub async fn list_requests(
    State(gateway): State<Gateway>,
    Me(me): Me,
) -> Result<Json<RequestList>, ApiError> {
    let requests = gateway.friends().requests(me).await.map_err(from_friends)?;
    Ok(Json(RequestList {
        incoming: requests.incoming,
        outgoing: requests.outgoing,
    }))
}

/// `PUT /v1/me/friends/{user_id}`: accepts a user's request.
#[utoipa::path(put, path = "/v1/me/friends/{user_id}", tag = "friends",
    params(("user_id" = u64, Path, description = "the user whose request to accept")),
    responses(
        (status = 200, description = "friends", body = Status),
        (status = 400, description = "invalid user id"),
        (status = 401, description = "missing or invalid token"),
        (status = 404, description = "no pending request from that user"),
        (status = 409, description = "too many friends"),
        (status = 503, description = "the friend store is unavailable")),
    security(("bearer" = [])))]
pub async fn accept_friend(
    State(gateway): State<Gateway>,
    Me(me): Me,
    Path(other): Path<String>,
) -> Result<Json<Status>, ApiError> {
    let other = user_id(&other)?;
    if gateway
        .friends()
        .friends(me)
        .await
        .map_err(from_friends)?
        .binary_search(&other)
        .is_ok()
    {
        return Ok(Json(Status { status: "friends" }));
    }
    if !gateway
        .friends()
        .accept(me, other)
        .await
        .map_err(from_friends)?
    {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no pending friend request from user {other}"),
        ));
    }
    notify_pair(&gateway, me, other).await;
    Ok(Json(Status { status: "friends" }))
}

/// `DELETE /v1/me/friends/{user_id}`: ends a friendship or a request, either way.
#[utoipa::path(delete, path = "/v1/me/friends/{user_id}", tag = "friends",
    params(("user_id" = u64, Path, description = "the friend, or the user of a pending request")),
    responses(
        (status = 204, description = "ended"),
        (status = 400, description = "invalid user id"),
        (status = 401, description = "missing or invalid token"),
        (status = 404, description = "no friendship or request with that user"),
        (status = 503, description = "the friend store is unavailable")),
    security(("bearer" = [])))]
pub async fn remove_friend(
    State(gateway): State<Gateway>,
    Me(me): Me,
    Path(other): Path<String>,
) -> Result<StatusCode, ApiError> {
    let other = user_id(&other)?;
    if !gateway
        .friends()
        .remove(me, other)
        .await
        .map_err(from_friends)?
    {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no friendship or request with user {other}"),
        ));
    }
    notify_pair(&gateway, me, other).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Schema of a `/v1/me` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SharingBody {
    /// Share the location with friends.
    enabled: bool,
    /// RFC 3339 time at which the setting flips back; absent for until changed.
    until: Option<String>,
    /// What friends without a setting of their own see: `exact` or `approximate` (absent:
    /// unchanged; `exact` when never set).
    precision: Option<String>,
}

/// Schema of a `/v1/me` body.
#[derive(Serialize, ToSchema)]
pub struct SharingView {
    /// The setting.
    enabled: bool,
    /// When it flips back.
    #[serde(skip_serializing_if = "Option::is_none")]
    until: Option<String>,
    /// Whether friends see the user now.
    sharing_now: bool,
    /// What friends without a setting of their own see: `exact` or `approximate`.
    precision: &'static str,
}

fn sharing_view(sharing: Sharing) -> SharingView {
    SharingView {
        enabled: sharing.enabled,
        until: sharing.until_ms.map(clock::format_rfc3339),
        sharing_now: sharing.effective(clock::now_ms()),
        precision: sharing.precision.as_str(),
    }
}

/// `GET /v1/me/sharing`: the sharing setting.
#[utoipa::path(get, path = "/v1/me/sharing", tag = "friends",
    responses(
        (status = 200, description = "the sharing setting", body = SharingView),
        (status = 401, description = "missing or invalid token"),
        (status = 503, description = "the friend store is unavailable")),
    security(("bearer" = [])))]
pub async fn get_sharing(
    State(gateway): State<Gateway>,
    Me(me): Me,
) -> Result<Json<SharingView>, ApiError> {
    let sharing = gateway.friends().sharing(me).await.map_err(from_friends)?;
    Ok(Json(sharing_view(sharing)))
}

/// `PUT /v1/me/sharing`: turns sharing on or off (ghost mode), optionally until a time.
#[utoipa::path(put, path = "/v1/me/sharing", tag = "friends",
    request_body = SharingBody,
    responses(
        (status = 200, description = "the new setting", body = SharingView),
        (status = 400, description = "invalid body or time"),
        (status = 401, description = "missing or invalid token"),
        (status = 409, description = "friendships are read-only on this deployment"),
        (status = 422, description = "invalid precision"),
        (status = 503, description = "the friend store is unavailable")),
    security(("bearer" = [])))]
pub async fn set_sharing(
    State(gateway): State<Gateway>,
    Me(me): Me,
    body: Result<Json<SharingBody>, JsonRejection>,
) -> Result<Json<SharingView>, ApiError> {
    let Json(body) = body.map_err(|rejection| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!(
                "expected {{\"enabled\": bool, \"until\": RFC 3339 time?, \"precision\": \"exact\"|\"approximate\"?}}: {}",
                rejection.body_text()
            ),
        )
    })?;
    // No bound ahead: ghost mode may be set until any future time.
    let until_ms = parse_until(body.until.as_deref(), clock::now_ms(), i64::MAX)
        .map_err(|message| ApiError::invalid("until", message))?;
    let precision = match body.precision.as_deref() {
        None => {
            gateway
                .friends()
                .sharing(me)
                .await
                .map_err(from_friends)?
                .precision
        }
        Some(text) => match Precision::parse(text) {
            Some(precision @ (Precision::Exact | Precision::Approximate)) => precision,
            _ => {
                return Err(ApiError::unprocessable(
                    "precision",
                    "precision must be \"exact\" or \"approximate\" (hide from everyone with \"enabled\": false)",
                ));
            }
        },
    };
    let sharing = Sharing {
        enabled: body.enabled,
        until_ms,
        precision,
    };
    gateway
        .friends()
        .set_sharing(me, sharing)
        .await
        .map_err(from_friends)?;
    if !sharing.effective(clock::now_ms())
        && let Err(err) = gateway.hide(me).await
    {
        tracing::warn!(user = me, error = %err, "could not hide the user from live sessions");
    }
    if let Err(err) = gateway.notify_changed(me).await {
        tracing::warn!(user = me, error = %err, "could not notify live sessions of a sharing change");
    }
    Ok(Json(sharing_view(sharing)))
}

/// An optional `until` field: an RFC 3339 time after `now_ms` and at most `max_ahead_ms`
/// beyond it; `Err` with the message for the client.
fn parse_until(
    text: Option<&str>,
    now_ms: i64,
    max_ahead_ms: i64,
) -> Result<Option<i64>, &'static str> {
    let Some(text) = text else { return Ok(None) };
    let until = clock::parse_rfc3339(text)
        .ok_or("until must be an RFC 3339 time, e.g. 2026-12-03T18:00:00Z")?;
    if until <= now_ms {
        return Err("until must be in the future");
    }
    if until.saturating_sub(now_ms) > max_ahead_ms {
        return Err("until must be at most a year ahead");
    }
    Ok(Some(until))
}

/// The longest a per-friend setting may run.
const MAX_SETTING_MS: i64 = 366 * 24 * 3_600_000;

/// Schema of a `/v1/me/friends/{user_id}/sharing` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FriendSharingBody {
    /// `exact`, `approximate` or `hidden`.
    precision: Option<String>,
    /// RFC 3339 time, in the future and at most a year ahead, when the setting ends and the
    /// default applies again; absent for until changed.
    until: Option<String>,
}

/// What a user lets one friend see.
#[derive(Serialize, ToSchema)]
pub struct FriendSharingView {
    /// The friend.
    user_id: u64,
    /// `exact`, `approximate` or `hidden`.
    precision: &'static str,
    /// When the setting ends.
    #[serde(skip_serializing_if = "Option::is_none")]
    until: Option<String>,
    /// `friend` (a setting for this friend) or `default` (the user's default); only in
    /// answers to `GET`.
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<&'static str>,
}

fn not_a_friend(other: u64) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("user {other} is not your friend"),
    )
}

/// `PUT /v1/me/friends/{user_id}/sharing`: what one friend sees of the user.
#[utoipa::path(put, path = "/v1/me/friends/{user_id}/sharing", tag = "friends",
    params(("user_id" = u64, Path, description = "the friend")),
    request_body = FriendSharingBody,
    responses(
        (status = 200, description = "the setting", body = FriendSharingView),
        (status = 400, description = "invalid user id or body"),
        (status = 401, description = "missing or invalid token"),
        (status = 404, description = "not a friend"),
        (status = 409, description = "friendships are read-only on this deployment"),
        (status = 422, description = "invalid precision or until (named in `field`)"),
        (status = 503, description = "the friend store is unavailable")),
    security(("bearer" = [])))]
pub async fn set_friend_sharing(
    State(gateway): State<Gateway>,
    Me(me): Me,
    Path(other): Path<String>,
    body: Result<Json<FriendSharingBody>, JsonRejection>,
) -> Result<Json<FriendSharingView>, ApiError> {
    let other = user_id(&other)?;
    let Json(body) = body.map_err(|rejection| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!(
                "expected {{\"precision\": \"exact\"|\"approximate\"|\"hidden\", \"until\": RFC 3339 time?}}: {}",
                rejection.body_text()
            ),
        )
    })?;
    let precision = body
        .precision
        .as_deref()
        .and_then(Precision::parse)
        .ok_or_else(|| {
            ApiError::unprocessable(
                "precision",
                "precision must be \"exact\", \"approximate\" or \"hidden\"",
            )
        })?;
    let now = clock::now_ms();
    let until_ms = parse_until(body.until.as_deref(), now, MAX_SETTING_MS)
        .map_err(|message| ApiError::unprocessable("until", message))?;
    let setting = FriendSetting {
        precision,
        until_ms,
    };
    if !gateway
        .friends()
        .set_friend_setting(me, other, Some(setting))
        .await
        .map_err(from_friends)?
    {
        return Err(not_a_friend(other));
    }
    if let Err(err) = gateway.notify_changed(me).await {
        tracing::warn!(user = me, error = %err, "could not hint live sessions of a sharing change");
    }
    Ok(Json(FriendSharingView {
        user_id: other,
        precision: precision.as_str(),
        until: until_ms.map(clock::format_rfc3339),
        source: None,
    }))
}

/// `GET /v1/me/friends/{user_id}/sharing`: what one friend sees of the user now.
#[utoipa::path(get, path = "/v1/me/friends/{user_id}/sharing", tag = "friends",
    params(("user_id" = u64, Path, description = "the friend")),
    responses(
        (status = 200, description = "the effective setting, with its source", body = FriendSharingView),
        (status = 400, description = "invalid user id"),
        (status = 401, description = "missing or invalid token"),
        (status = 404, description = "not a friend"),
        (status = 503, description = "the friend store is unavailable")),
    security(("bearer" = [])))]
pub async fn get_friend_sharing(
    State(gateway): State<Gateway>,
    Me(me): Me,
    Path(other): Path<String>,
) -> Result<Json<FriendSharingView>, ApiError> {
    let other = user_id(&other)?;
    let grant = gateway
        .friends()
        .friend_setting(me, other, clock::now_ms())
        .await
        .map_err(from_friends)?
        .ok_or_else(|| not_a_friend(other))?;
    Ok(Json(match grant.setting {
        Some(setting) => FriendSharingView {
            user_id: other,
            precision: setting.precision.as_str(),
            until: setting.until_ms.map(clock::format_rfc3339),
            source: Some("friend"),
        },
        None => FriendSharingView {
            user_id: other,
            precision: grant.sharing.precision.as_str(),
            until: None,
            source: Some("default"),
        },
    }))
}

/// `DELETE /v1/me/friends/{user_id}/sharing`: back to the default for that friend.
#[utoipa::path(delete, path = "/v1/me/friends/{user_id}/sharing", tag = "friends",
    params(("user_id" = u64, Path, description = "the friend")),
    responses(
        (status = 204, description = "the default applies"),
        (status = 400, description = "invalid user id"),
        (status = 401, description = "missing or invalid token"),
        (status = 404, description = "not a friend"),
        (status = 409, description = "friendships are read-only on this deployment"),
        (status = 503, description = "the friend store is unavailable")),
    security(("bearer" = [])))]
pub async fn clear_friend_sharing(
    State(gateway): State<Gateway>,
    Me(me): Me,
    Path(other): Path<String>,
) -> Result<StatusCode, ApiError> {
    let other = user_id(&other)?;
    if !gateway
        .friends()
        .set_friend_setting(me, other, None)
        .await
        .map_err(from_friends)?
    {
        return Err(not_a_friend(other));
    }
    if let Err(err) = gateway.notify_changed(me).await {
        tracing::warn!(user = me, error = %err, "could not hint live sessions of a sharing change");
    }
    Ok(StatusCode::NO_CONTENT)
}
