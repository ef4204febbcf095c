//! The Plivo-compatible Multi-party Call REST API (mpc-api.md) under
//! `/v1/Account/{auth_id}/MultiPartyCall/`: HTTP basic auth, JSON in and out, Plivo's paths,
//! object shapes and status codes, so that Plivo's own SDKs work against huddle.
//!
//! Served today: list and get MPCs, start and end one; add participants (a live call, or
//! dialled out), list, get, update (mute, hold, coach mode) and kick them; play audio to
//! members and stop it; record the MPC and each participant (start, stop, pause, resume) and
//! serve the files, with the same basic auth, streamed from disk.

mod add_participant;
mod api_action;
mod async_callback;
mod dial_out;
mod objects;
mod participant_recording;
mod request;
mod time_filter;

use std::sync::Arc;

use axum::body::{Body as HttpBody, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, MethodRouter};
use axum::{Json, Router};
use huddle_room::recording::{format_of, RecordingPlace};
use huddle_room::state::Status;
use huddle_room::{Command, CommandError, MpcSnapshot, RegistryError, RoomRegistry, Target};
use huddle_roomport::{MemberId, RecordingId};
use serde_json::{json, Value};

use request::{bad, page, Body, Members};

/// An API error: its status and the JSON body `{"api_id", "error"}` every SDK reads (a body
/// is always sent: Go's SDK takes an empty non-2xx answer for success).
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: &str) -> Self {
        ApiError {
            status,
            message: message.to_string(),
        }
    }

    fn not_found(message: &str) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"api_id": api_id(), "error": self.message});
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            crate::auth::challenge(response.headers_mut());
        }
        response
    }
}

fn api_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

type ApiResult = Result<Response, ApiError>;

/// What the MPC API needs: the rooms and the account's credentials.
#[derive(Clone)]
pub struct MpcApi {
    /// The live (and recently ended) MPCs.
    pub rooms: RoomRegistry,
    /// `http.auth_id`.
    pub auth_id: String,
    /// `http.auth_token`.
    pub auth_token: String,
    /// Calls: the live ones, which add participant moves into MPCs, and dialling new ones.
    pub calls: Arc<huddle_callflow::CallContext>,
    /// Where recordings are and the URLs they are served at.
    pub recordings: RecordingPlace,
}

impl MpcApi {
    /// Basic auth must carry this account's id and token, and the path's account id must be
    /// the same account.
    fn authorize(&self, headers: &HeaderMap, path_account: &str) -> Result<(), ApiError> {
        self.authenticate(headers)?;
        if path_account != self.auth_id {
            return Err(ApiError::not_found(&format!(
                "no account {path_account:?} on this server"
            )));
        }
        Ok(())
    }

    /// Basic auth must carry this account's id and token (compared in constant time).
    fn authenticate(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        if crate::auth::Credentials::new(&self.auth_id, &self.auth_token).check(headers) {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "authentication failed: use HTTP basic auth with the auth id and auth token",
            ))
        }
    }

    /// The MPC a path's `uuid_…` / `name_…` segment names (a name finds live MPCs only).
    async fn find(&self, mpc_id: &str) -> Result<MpcSnapshot, ApiError> {
        let (kind, key) = if let Some(uuid) = mpc_id.strip_prefix("uuid_") {
            ("uuid", uuid)
        } else if let Some(name) = mpc_id.strip_prefix("name_") {
            ("name", name)
        } else {
            return Err(ApiError::not_found(&format!(
                "multiparty call id must be uuid_<uuid> or name_<friendly name>, not {mpc_id:?}"
            )));
        };
        let found = self.rooms.snapshot(key).await.filter(|s| match kind {
            "uuid" => s.uuid == key,
            _ => s.name == key && s.status != Status::Ended,
        });
        found.ok_or_else(|| ApiError::not_found(&format!("no multiparty call with {kind} {key:?}")))
    }

    async fn command(&self, mpc: &MpcSnapshot, command: Command) -> Result<(), ApiError> {
        self.rooms
            .command(mpc.uuid.as_str(), command)
            .await
            .map_err(|e| match e {
                RegistryError::NotFound | RegistryError::Refused(CommandError::Ended) => {
                    ApiError::not_found(&format!("multiparty call {:?} has ended", mpc.name))
                }
                RegistryError::Refused(CommandError::NoSuchMember(m)) => {
                    ApiError::not_found(&format!("no participant with member id {m}"))
                }
                RegistryError::Refused(e @ CommandError::NotASupervisor(_)) => bad(&e.to_string()),
                RegistryError::Refused(
                    e @ (CommandError::AlreadyActive
                    | CommandError::NotRecording
                    | CommandError::MemberNotRecording(_)),
                ) => ApiError::not_found(&e.to_string()),
                RegistryError::Refused(
                    e @ (CommandError::AlreadyRecording
                    | CommandError::PauseUnchanged(_)
                    | CommandError::MemberAlreadyRecording(_)
                    | CommandError::MemberPauseUnchanged(..)),
                ) => bad(&e.to_string()),
            })
    }
}

/// The API's routes; every path also answers with a trailing slash, as SDKs send it.
pub fn routes(api: MpcApi) -> Router {
    let base = "/v1/Account/{auth_id}/MultiPartyCall";
    let mut router = Router::new();
    for (path, methods) in [
        ("", get(list_mpcs)),
        ("/{mpc_id}", get(get_mpc).post(start_mpc).delete(end_mpc)),
        (
            "/{mpc_id}/Participant",
            get(list_participants).post(add_participant),
        ),
        (
            "/{mpc_id}/Participant/{member}",
            get(get_participant)
                .post(update_participant)
                .delete(kick_participant),
        ),
        (
            "/{mpc_id}/Member/{member}/Play",
            MethodRouter::new().post(play).delete(stop_play),
        ),
        (
            "/{mpc_id}/Record",
            MethodRouter::new()
                .post(start_recording)
                .delete(stop_recording),
        ),
        (
            "/{mpc_id}/Record/{action}",
            MethodRouter::new().post(pause_recording),
        ),
        (
            "/{mpc_id}/Participant/{member}/Record",
            MethodRouter::new()
                .post(participant_recording::start)
                .delete(participant_recording::stop),
        ),
        (
            "/{mpc_id}/Participant/{member}/Record/{action}",
            MethodRouter::new().post(participant_recording::pause),
        ),
    ] {
        let methods = methods.fallback(method_not_allowed);
        router = router
            .route(&format!("{base}{path}"), methods.clone())
            .route(&format!("{base}{path}/"), methods);
    }
    let recording_file = "/v1/Account/{auth_id}/Recording/{file}";
    router
        .route(recording_file, get(recording_file_get))
        .with_state(api)
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this path",
    )
}

fn ok(status: StatusCode, mut body: Value) -> Response {
    body["api_id"] = json!(api_id());
    (status, Json(body)).into_response()
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// `meta` for a page of `count` results; `next`/`previous` are relative URLs or null.
fn meta(path: &str, count: usize, limit: usize, offset: usize) -> Value {
    let link = |offset: usize| format!("{path}?limit={limit}&offset={offset}");
    json!({
        "count": count,
        "limit": limit,
        "offset": offset,
        "next": (offset + limit < count).then(|| link(offset + limit)),
        "previous": (offset > 0).then(|| link(offset.saturating_sub(limit))),
    })
}

async fn list_mpcs(
    State(api): State<MpcApi>,
    headers: HeaderMap,
    Path(account): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> ApiResult {
    api.authorize(&headers, &account)?;
    let (limit, offset) = page(&query, 20)?;
    let filter = time_filter::MpcFilter::parse(&query)?;
    let all: Vec<MpcSnapshot> = api
        .rooms
        .snapshots()
        .await
        .into_iter()
        .filter(|s| filter.matches(s))
        .collect();
    let objects: Vec<Value> = all
        .iter()
        .skip(offset)
        .take(limit)
        .map(|s| objects::mpc(&api.auth_id, s))
        .collect();
    let path = format!("/v1/Account/{}/MultiPartyCall/", api.auth_id);
    Ok(ok(
        StatusCode::OK,
        json!({"meta": meta(&path, all.len(), limit, offset), "objects": objects}),
    ))
}

async fn get_mpc(
    State(api): State<MpcApi>,
    headers: HeaderMap,
    Path((account, mpc_id)): Path<(String, String)>,
) -> ApiResult {
    api.authorize(&headers, &account)?;
    let mpc = api.find(&mpc_id).await?;
    Ok(ok(StatusCode::OK, objects::mpc(&api.auth_id, &mpc)))
}

async fn start_mpc(
    State(api): State<MpcApi>,
    headers: HeaderMap,
    Path((account, mpc_id)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    api.authorize(&headers, &account)?;
    let body = Body::parse(&body)?;
    match body.string("status")? {
        Some(s) if s.eq_ignore_ascii_case("active") => {}
        Some(other) => return Err(bad(&format!("status must be active, not {other:?}"))),
        None => return Err(bad("status is required (active)")),
    }
    let mpc = api.find(&mpc_id).await?;
    if mpc.status != Status::Initialized || !mpc.participants.iter().any(|p| p.is_present()) {
        return Err(ApiError::not_found(&format!(
            "multiparty call {:?} is not waiting to start (status {})",
            mpc.name,
            mpc.status.as_str()
        )));
    }
    api.command(&mpc, Command::Start).await?;
    Ok(no_content())
}

async fn end_mpc(
    State(api): State<MpcApi>,
    headers: HeaderMap,
    Path((account, mpc_id)): Path<(String, String)>,
) -> ApiResult {
    api.authorize(&headers, &account)?;
    let mpc = api.find(&mpc_id).await?;
    if mpc.status == Status::Ended {
        return Err(ApiError::not_found(&format!(
            "multiparty call {:?} has already ended",
            mpc.name
        )));
    }
    api.command(&mpc, Command::End).await?;
    Ok(no_content())
}

async fn list_participants(
    State(api): State<MpcApi>,
    headers: HeaderMap,
    Path((account, mpc_id)): Path<(String, String)>,
    Query(query): Query<Vec<(String, String)>>,
) -> ApiResult {
    api.authorize(&headers, &account)?;
    let (limit, offset) = page(&query, 20)?;
    let mpc = api.find(&mpc_id).await?;
    let call_uuid = query.iter().find(|(k, _)| k == "call_uuid").map(|(_, v)| v);
    let matching: Vec<_> = mpc
        .participants
        .iter()
        .filter(|p| call_uuid.is_none_or(|c| &p.call_uuid == c))
        .collect();
    let objects: Vec<Value> = matching
        .iter()
        .skip(offset)
        .take(limit)
        .map(|p| objects::participant(&api.auth_id, &mpc.uuid, p))
        .collect();
    let path = format!("{}Participant/", objects::mpc_uri(&api.auth_id, &mpc.uuid));
    Ok(ok(
        StatusCode::OK,
        json!({"meta": meta(&path, matching.len(), limit, offset), "objects": objects}),
    ))
}

async fn get_participant(
    State(api): State<MpcApi>,
    headers: HeaderMap,
    Path((account, mpc_id, member)): Path<(String, String, String)>,
) -> ApiResult {
    api.authorize(&headers, &account)?;
    let id: MemberId = member
        .trim()
        .parse()
        .map_err(|_| bad(&format!("member id must be a number, not {member:?}")))?;
    let mpc = api.find(&mpc_id).await?;
    // A member id names one entry; the latest, should a number ever come back.
    let p = mpc
        .participants
        .iter()
        .rev()
        .find(|p| p.member_id == id)
        .ok_or_else(|| ApiError::not_found(&format!("no participant with member id {id}")))?;
    Ok(ok(
        StatusCode::OK,
        objects::participant(&api.auth_id, &mpc.uuid, p),
    ))
}

/// The members a segment names, checked against who is in the MPC now.
fn present_targets(
    mpc: &MpcSnapshot,
    members: &Members,
) -> Result<(Target, Vec<MemberId>), ApiError> {
    let present: Vec<MemberId> = mpc
        .participants
        .iter()
        .filter(|p| p.is_present())
        .map(|p| p.member_id)
        .collect();
    match members {
        Members::All => Ok((Target::All, present)),
        Members::Ids(ids) => {
            if let Some(missing) = ids.iter().find(|id| !present.contains(id)) {
                return Err(ApiError::not_found(&format!(
                    "no participant with member id {missing} in multiparty call {:?}",
                    mpc.name
                )));
            }
            Ok((Target::Members(ids.clone()), ids.clone()))
        }
    }
}

async fn update_participant(
    State(api): State<MpcApi>,
    headers: HeaderMap,
    Path((account, mpc_id, member)): Path<(String, String, String)>,
    body: Bytes,
) -> ApiResult {
    api.authorize(&headers, &account)?;
    let body = Body::parse(&body)?;
    let members = Members::parse(&member)?;
    let (mute, hold, coach) = (
        body.bool("mute")?,
        body.bool("hold")?,
        body.bool("coach_mode")?,
    );
    if mute.is_none() && hold.is_none() && coach.is_none() {
        return Err(bad("give at least one of mute, hold, coach_mode"));
    }
    if coach.is_some() && members == Members::All {
        return Err(bad("coach_mode cannot be changed for all members at once"));
    }
    let mpc = api.find(&mpc_id).await?;
    let (target, ids) = present_targets(&mpc, &members)?;
    if let Some(on) = coach {
        // Checked first: a refusal must not leave mute or hold half applied.
        if let Some(p) = mpc
            .participants
            .iter()
            .find(|p| ids.contains(&p.member_id) && p.role != huddle_xml::Role::Supervisor)
        {
            return Err(bad(&CommandError::NotASupervisor(p.member_id).to_string()));
        }
        for id in &ids {
            api.command(&mpc, Command::CoachMode(*id, on)).await?;
        }
    }
    let mut reply = json!({});
    let name = &mpc.name;
    if let Some(on) = mute {
        api.command(&mpc, Command::Mute(target.clone(), on)).await?;
        let verb = if on { "mute" } else { "unmute" };
        reply["mute"] = json!(format!("MPC: {name} {verb} member(s) succeeded"));
    }
    if let Some(on) = hold {
        api.command(&mpc, Command::Hold(target, on)).await?;
        let verb = if on { "hold" } else { "unhold" };
        reply["hold"] = json!(format!("MPC: {name} {verb} member(s) succeeded"));
    }
    if let Some(on) = coach {
        let verb = if on { "enable" } else { "disable" };
        reply["coach_mode"] = json!(format!("MPC: {name} coach_mode {verb} succeeded"));
    }
    Ok(ok(StatusCode::OK, reply))
}

async fn kick_participant(
    State(api): State<MpcApi>,
    headers: HeaderMap,
    Path(path): Path<(String, String, String)>,
) -> ApiResult {
    member_command(&api, &headers, path, Command::Kick).await
}

/// A body-less command on the members a path names, answered 204 once it took effect.
async fn member_command(
    api: &MpcApi,
    headers: &HeaderMap,
    (account, mpc_id, member): (String, String, String),
    command: impl FnOnce(Target) -> Command,
) -> ApiResult {
    api.authorize(headers, &account)?;
    let members = Members::parse(&member)?;
    let mpc = api.find(&mpc_id).await?;
    let (target, _) = present_targets(&mpc, &members)?;
    api.command(&mpc, command(target)).await?;
    Ok(no_content())
}

async fn play(
    State(api): State<MpcApi>,
    headers: HeaderMap,
    Path((account, mpc_id, member)): Path<(String, String, String)>,
    body: Bytes,
) -> ApiResult {
    api.authorize(&headers, &account)?;
    let body = Body::parse(&body)?;
    let members = Members::parse(&member)?;
    // SDKs send `url`, the docs' cURL `urls`.
    let url = match (body.string("url")?, body.string("urls")?) {
        (Some(url), _) | (None, Some(url)) => url.trim().to_string(),
        (None, None) => return Err(bad("url is required (an mp3 or wav file)")),
    };
    if url.contains(',') {
        return Err(bad("give one audio URL at a time"));
    }
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(bad(&format!("url must be an http(s) URL, not {url:?}")));
    }
    let mpc = api.find(&mpc_id).await?;
    let (target, ids) = present_targets(&mpc, &members)?;
    api.command(&mpc, Command::Play(target, url)).await?;
    let ids: Vec<String> = ids.iter().map(MemberId::to_string).collect();
    Ok(ok(
        StatusCode::ACCEPTED,
        json!({"message": "play queued into MPC", "mpcMemberId": ids, "mpcName": mpc.name}),
    ))
}

async fn stop_play(
    State(api): State<MpcApi>,
    headers: HeaderMap,
    Path(path): Path<(String, String, String)>,
) -> ApiResult {
    member_command(&api, &headers, path, Command::StopPlay).await
}

async fn add_participant(
    State(api): State<MpcApi>,
    headers: HeaderMap,
    Path((account, mpc_id)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    api.authorize(&headers, &account)?;
    let body = Body::parse(&body)?;
    // By name, the MPC is created if no live one has it; by uuid, it must be live.
    let name = match mpc_id.strip_prefix("name_") {
        Some(name) => name.to_string(),
        None => {
            let mpc = api.find(&mpc_id).await?;
            if mpc.status == Status::Ended {
                return Err(ApiError::not_found(&format!(
                    "multiparty call {:?} has ended",
                    mpc.name
                )));
            }
            mpc.name
        }
    };
    let callback = async_callback::parse(&body)?;
    let add = add_participant::AddParticipant::parse(&body, &name)?;
    let Some(callback) = callback else {
        let outcome = perform_add(&api, add, &name).await?;
        return Ok(ok(StatusCode::CREATED, outcome));
    };
    // The asynchronous form (callback_url): a bad request is still refused at once; what
    // the synchronous form would answer goes to the callback.
    let id = api_id();
    let task_api = api.clone();
    let task_id = id.clone();
    tokio::spawn(async move {
        let outcome = perform_add(&task_api, add, &name).await;
        async_callback::report(
            &task_api.calls,
            &callback,
            &task_id,
            outcome.map_err(|e| (e.status, e.message)),
        );
    });
    Ok((
        StatusCode::CREATED,
        Json(json!({"api_id": id, "message": "async api spawned"})),
    )
        .into_response())
}

/// Moves the call in, dials the legs, or joins the stream: the response's body.
async fn perform_add(
    api: &MpcApi,
    add: add_participant::AddParticipant,
    mpc_name: &str,
) -> Result<Value, ApiError> {
    let request_uuid = api_id();
    let calls = match add.source {
        add_participant::Source::Call(call_uuid) => {
            let missing =
                || ApiError::not_found(&format!("no live call with call_uuid {call_uuid:?}"));
            let call = api.calls.calls.get(&call_uuid).ok_or_else(missing)?;
            if !api.calls.calls.transfer(&call_uuid, add.document) {
                return Err(missing());
            }
            vec![json!({"to": call.to, "from": call.from, "call_uuid": call_uuid})]
        }
        add_participant::Source::Dial(dial) => {
            dial_out::dial_out(api, *dial, &add.document, mpc_name, &request_uuid).await?
        }
        add_participant::Source::Stream => {
            let joined = join_stream(api, &add.document).await?;
            vec![joined]
        }
    };
    Ok(json!({
        "api_id": api_id(),
        "calls": calls,
        "message": "add participant action initiated",
        "request_uuid": request_uuid,
    }))
}

/// Joins an ai-agent stream member (design.md "AI agents"): a call uuid is made for it and
/// huddle dials the service; answers the `calls` entry with its member id.
async fn join_stream(api: &MpcApi, document: &str) -> Result<Value, ApiError> {
    let mpc = huddle_xml::parse(document)
        .ok()
        .and_then(|parsed| {
            parsed.document.verbs.into_iter().find_map(|v| match v {
                huddle_xml::Verb::MultiPartyCall(m) => Some(m),
                _ => None,
            })
        })
        .ok_or_else(|| bad("the participant's attributes do not make a MultiPartyCall"))?;
    let settings = huddle_aistream::StreamSettings::from_xml(&mpc.ai_agent_stream)
        .map_err(|e| bad(&e.to_string()))?;
    let call_uuid = huddle_roomport::CallUuid::new(uuid::Uuid::new_v4().to_string());
    let url = settings.url.clone();
    let request = huddle_roomport::JoinRequest {
        call_uuid: call_uuid.clone(),
        from: String::new(),
        to: url.clone(),
        mpc,
        // The member exchanges frames at the stream's own rate: a 16 kHz stream is a wideband
        // member (its room mixes at 16 kHz, as for any wideband leg), an 8 kHz one narrowband.
        sample_rate: settings.format.rate(),
    };
    let member = huddle_aistream::join(
        &api.rooms,
        api.calls.ai_streams.clone(),
        request,
        settings,
        "outbound",
    )
    .await
    .map_err(|refused| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, &refused.reason))?;
    let member_id = member.member_id.get().to_string();
    let stream_id = member.stream_id.clone();
    member.detach();
    Ok(json!({
        "to": url,
        "from": "",
        "call_uuid": call_uuid.to_string(),
        "member_id": member_id,
        "stream_id": stream_id,
    }))
}

async fn start_recording(
    State(api): State<MpcApi>,
    headers: HeaderMap,
    Path((account, mpc_id)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    api.authorize(&headers, &account)?;
    let body = Body::parse(&body)?;
    let format = file_format(&body)?;
    let callback = recording_callback(&body)?;
    let mpc = api.find(&mpc_id).await?;
    api.command(&mpc, Command::StartRecording { format, callback })
        .await?;
    let id = api
        .rooms
        .snapshot(mpc.uuid.as_str())
        .await
        .and_then(|s| s.recording)
        .map(|(id, _)| id)
        .ok_or_else(|| ApiError::not_found("the multiparty call ended as the recording started"))?;
    Ok(ok(
        StatusCode::OK,
        json!({
            "message": format!("MPC: {} record started", mpc.name),
            "recording_url": api.recordings.url(&id, format_of(format)),
            "recording_id": id,
        }),
    ))
}

/// `file_format` of a start-recording request: mp3 (the default) or wav.
fn file_format(body: &Body) -> Result<huddle_xml::RecordFormat, ApiError> {
    match body.string("file_format")?.as_deref().map(str::trim) {
        None => Ok(huddle_xml::RecordFormat::Mp3),
        Some(f) if f.eq_ignore_ascii_case("mp3") => Ok(huddle_xml::RecordFormat::Mp3),
        Some(f) if f.eq_ignore_ascii_case("wav") => Ok(huddle_xml::RecordFormat::Wav),
        Some(other) => Err(bad(&format!(
            "file_format must be mp3 or wav, not {other:?}"
        ))),
    }
}

/// `recording_callback_url` and `recording_callback_method` of a start-recording request.
fn recording_callback(body: &Body) -> Result<Option<huddle_xml::UrlWithMethod>, ApiError> {
    let method = match body.string("recording_callback_method")?.as_deref() {
        // The REST default is POST (mpc-api.md §5.10).
        None => huddle_xml::HttpMethod::Post,
        Some(m) if m.eq_ignore_ascii_case("post") => huddle_xml::HttpMethod::Post,
        Some(m) if m.eq_ignore_ascii_case("get") => huddle_xml::HttpMethod::Get,
        Some(other) => {
            return Err(bad(&format!(
                "recording_callback_method must be GET or POST, not {other:?}"
            )))
        }
    };
    match body.string("recording_callback_url")? {
        Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
            Ok(Some(huddle_xml::UrlWithMethod { url, method }))
        }
        Some(url) => Err(bad(&format!(
            "recording_callback_url must be an http(s) URL, not {url:?}"
        ))),
        None => Ok(None),
    }
}

async fn stop_recording(
    State(api): State<MpcApi>,
    headers: HeaderMap,
    Path((account, mpc_id)): Path<(String, String)>,
) -> ApiResult {
    api.authorize(&headers, &account)?;
    let mpc = api.find(&mpc_id).await?;
    api.command(&mpc, Command::StopRecording).await?;
    Ok(no_content())
}

/// The `Pause` or `Resume` path segment of a recording route: true to pause.
pub(super) fn pause_action(action: &str) -> Result<bool, ApiError> {
    if action.eq_ignore_ascii_case("pause") {
        Ok(true)
    } else if action.eq_ignore_ascii_case("resume") {
        Ok(false)
    } else {
        Err(ApiError::not_found(&format!(
            "no recording action {action:?} (Pause or Resume)"
        )))
    }
}

async fn pause_recording(
    State(api): State<MpcApi>,
    headers: HeaderMap,
    Path((account, mpc_id, action)): Path<(String, String, String)>,
) -> ApiResult {
    api.authorize(&headers, &account)?;
    let pause = pause_action(&action)?;
    let mpc = api.find(&mpc_id).await?;
    api.command(&mpc, Command::PauseRecording(pause)).await?;
    Ok(no_content())
}

/// A recording file, `<recording_id>.<mp3|wav>`, for the account's basic auth only (checked
/// before anything else, so that nothing is learnt about which recordings exist without it).
/// The file is streamed from disk in chunks, never read whole into memory.
async fn recording_file_get(
    State(api): State<MpcApi>,
    headers: HeaderMap,
    Path((account, file)): Path<(String, String)>,
) -> ApiResult {
    api.authenticate(&headers)?;
    let not_found = || ApiError::not_found("no such recording");
    if account != api.auth_id {
        return Err(not_found());
    }
    let (id, extension) = file.rsplit_once('.').ok_or_else(not_found)?;
    let format = match extension {
        "wav" => huddle_record::Format::Wav,
        "mp3" => huddle_record::Format::Mp3,
        _ => return Err(not_found()),
    };
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(not_found());
    }
    let id = RecordingId::new(id);
    let file = tokio::fs::File::open(api.recordings.path(&id, format))
        .await
        .map_err(|_| not_found())?;
    let length = file.metadata().await.map_err(|_| not_found())?.len();
    let content_type = match format {
        huddle_record::Format::Wav => "audio/wav",
        huddle_record::Format::Mp3 => "audio/mpeg",
    };
    // A recording still being written grows: send the length it has now and no more.
    let stream = tokio_util::io::ReaderStream::new(tokio::io::AsyncReadExt::take(file, length));
    Ok((
        [
            ("content-type", content_type.to_string()),
            ("content-length", length.to_string()),
        ],
        HttpBody::from_stream(stream),
    )
        .into_response())
}
