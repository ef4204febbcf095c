"""Drives a live huddle with Plivo's own Python SDK (the `plivo` package, pinned in
requirements.txt) and exits non-zero on the first answer that is not what Plivo's API gives.

Run by tests/blackbox/plivo_sdk.rs, which starts the server with a test trunk, puts an agent
in MPC `sdk` and a customer in MPC `lobby`, answers the dial-out this script asks for, and
checks the INVITE's Request-URI on its side.

Usage: mpc_sdk.py HTTP_BASE AUTH_ID AUTH_TOKEN AUDIO_URL
"""

import sys
import time

import plivo
import plivo.rest.client as plivo_rest_client


def point_sdk_at(base):
    """The SDK has no base-URL argument: it reads these module constants on every request
    (voice requests use API_VOICE_BASE_URI and its two fallbacks after a 5xx; `start` uses
    PLIVO_API_BASE_URI)."""
    for name in ("PLIVO_API", "API_VOICE", "API_VOICE_FALLBACK_1", "API_VOICE_FALLBACK_2"):
        setattr(plivo_rest_client, name, base)
    for name in ("PLIVO_API_BASE_URI", "API_VOICE_BASE_URI",
                 "API_VOICE_BASE_URI_FALLBACK_1", "API_VOICE_BASE_URI_FALLBACK_2"):
        setattr(plivo_rest_client, name, base + "/v1/Account")


def check(condition, what):
    if not condition:
        print("MISMATCH: " + what, file=sys.stderr)
        sys.exit(1)
    print("ok: " + what)


def wait_for(what, probe, within=10.0):
    """Polls `probe` until it returns something truthy."""
    deadline = time.time() + within
    while time.time() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.2)
    check(False, what)


def participants(client, name):
    return list(client.multi_party_calls.list_participants(friendly_name=name))


def live(client, name):
    return [p for p in participants(client, name) if not p.exit_time]


def main():
    base, auth_id, auth_token, audio_url = sys.argv[1:5]
    point_sdk_at(base)
    client = plivo.RestClient(auth_id=auth_id, auth_token=auth_token)
    mpcs = client.multi_party_calls

    # List and get.
    listed = mpcs.list(status="active")
    names = sorted(m.friendly_name for m in listed)
    check("sdk" in names and "lobby" in names, "list() shows the live MPCs: %s" % names)
    check(listed.meta["count"] >= 2, "list() has meta.count")
    sdk = mpcs.get(friendly_name="sdk")
    check(sdk.friendly_name == "sdk" and sdk.status == "Active", "get() by name: %s" % sdk)
    by_uuid = mpcs.get(uuid=sdk.mpc_uuid)
    check(by_uuid.mpc_uuid == sdk.mpc_uuid, "get() by uuid")

    # Add participant by call uuid: the lobby's customer moves into sdk.
    lobby = live(client, "lobby")
    check(len(lobby) == 1, "one customer waits in the lobby")
    moved_uuid = lobby[0].call_uuid
    added = mpcs.add_participant(role="customer", friendly_name="sdk", call_uuid=moved_uuid,
                                 enter_sound="none", exit_sound="none")
    check(added.message == "add participant action initiated", "add by call_uuid: %s" % added)
    check(added.calls[0]["call_uuid"] == moved_uuid, "the response names the moved call")
    wait_for("the moved call joins sdk",
             lambda: any(p.call_uuid == moved_uuid for p in live(client, "sdk")))

    # Add participant by dialling a bare number out through the trunk (the test's trunk
    # checks the Request-URI, the caller name and the custom header, and answers).
    dialled = mpcs.add_participant(role="customer", friendly_name="sdk",
                                   from_="+14155550100", to_="15557654321",
                                   caller_name="Sales Desk", sip_headers="Queue=7",
                                   enter_sound="none", exit_sound="none")
    check(dialled.message == "add participant action initiated", "add by dial-out: %s" % dialled)
    check(dialled.calls[0]["to"] == "15557654321", "the response names the destination")
    dialled_uuid = dialled.calls[0]["call_uuid"]
    dialled_member = wait_for(
        "the dialled call joins sdk once answered",
        lambda: next((p for p in live(client, "sdk") if p.call_uuid == dialled_uuid), None),
        within=15.0)
    member_id = dialled_member.member_id

    # Update: mute, then hold, each visible on get_participant.
    muted = mpcs.update_participant(participant_id=member_id, friendly_name="sdk", mute=True)
    check("mute" in muted.__dict__, "update mute answers with a mute message: %s" % muted)
    got = mpcs.get_participant(participant_id=member_id, friendly_name="sdk")
    check(got.mute is True, "the participant is muted")
    held = mpcs.update_participant(participant_id=member_id, friendly_name="sdk",
                                   mute=False, hold=True)
    check("hold" in held.__dict__, "update hold answers with a hold message: %s" % held)
    got = mpcs.get_participant(participant_id=int(member_id), friendly_name="sdk")
    check(got.hold is True and got.mute is False, "the participant is on hold, unmuted")
    mpcs.update_participant(participant_id=member_id, friendly_name="sdk", hold=False)

    # MPC recording: start, then stop.
    started = mpcs.start_recording(friendly_name="sdk", file_format="wav")
    check(started.recording_id and started.recording_url.endswith(".wav"),
          "start_recording gives an id and a wav URL: %s" % started)
    check(mpcs.get(friendly_name="sdk").recording == "recording", "the MPC is recording")
    mpcs.stop_recording(friendly_name="sdk")
    check(mpcs.get(friendly_name="sdk").recording == "not-recording", "recording stopped")

    # Participant recording of the dialled member: start (the SDK's default track type, all),
    # pause, resume, stop.
    precording = mpcs.start_participant_recording(participant_id=member_id,
                                                  friendly_name="sdk", file_format="wav")
    check(precording.recording_id and precording.recording_url.endswith(".wav"),
          "start_participant_recording gives an id and a wav URL: %s" % precording)
    mpcs.pause_participant_recording(participant_id=member_id, friendly_name="sdk")
    mpcs.resume_participant_recording(participant_id=member_id, friendly_name="sdk")
    mpcs.stop_participant_recording(participant_id=member_id, friendly_name="sdk")
    try:
        mpcs.stop_participant_recording(participant_id=member_id, friendly_name="sdk")
        check(False, "stopping a stopped participant recording raises")
    except plivo.exceptions.ResourceNotFoundError:
        check(True, "stopping it again raises ResourceNotFoundError")

    # Play audio to the dialled member, then stop it.
    played = mpcs.start_play_audio(participant_id=member_id, friendly_name="sdk", url=audio_url)
    check(played.mpcMemberId == [member_id] and played.mpcName == "sdk",
          "start_play_audio answers like Plivo: %s" % played)
    mpcs.stop_play_audio(participant_id=member_id, friendly_name="sdk")

    # Kick the dialled member.
    mpcs.kick_participant(participant_id=member_id, friendly_name="sdk")
    gone = wait_for(
        "the kicked participant has left",
        lambda: (lambda p: p if p.exit_time else None)(
            mpcs.get_participant(participant_id=member_id, friendly_name="sdk")))
    check(gone.exit_cause == "Kicked Out of Multiparty Call",
          "exit_cause of a kick: %s" % gone.exit_cause)

    # Errors come back as the SDK's exceptions.
    try:
        mpcs.get(friendly_name="no-such-mpc")
        check(False, "an unknown MPC raises")
    except plivo.exceptions.ResourceNotFoundError:
        check(True, "an unknown MPC raises ResourceNotFoundError")
    print("all SDK checks passed")


if __name__ == "__main__":
    main()
