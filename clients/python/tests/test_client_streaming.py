"""The streaming helpers against a real server: the PCM protocol and the whole-recordings one, sync and async."""
from __future__ import annotations

import wave

import pytest
import voiceprint_client as vc
from clienttools import run_async, silence_wav
from voiceprint_client import VoiceprintClient, models
from voiceprint_client.audio import read_wav

pytestmark = pytest.mark.servers


def test_a_file_streamed_against_its_speaker_is_accepted_window_by_window(client, enrolled, wav):
    result = client.stream_file(wav("a_snt5"), enrolled.alice)
    assert result.ready.reference == "speaker" and result.ready.speaker_id == enrolled.alice
    assert result.scores and all(isinstance(s, models.StreamScore) for s in result.scores)
    assert result.summary.final.accepted and result.summary.scores == len(result.scores)
    assert any(e.event == "speech" for e in result.events)


def test_another_voice_streamed_against_a_speaker_is_rejected(client, enrolled, wav):
    result = client.stream_file(wav("b_snt5"), enrolled.alice)
    assert result.summary.final is not None and not result.summary.final.accepted


def test_without_a_speaker_the_first_speech_is_the_reference(client, wav, tmp_path):
    joined = tmp_path / "a1_a2.wav"
    first, second = read_wav(wav("a_snt1")), read_wav(wav("a_snt2"))
    with wave.open(str(joined), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(first.sample_rate)
        out.writeframes(first.data + second.data)
    seen: list[models.Model] = []
    result = client.stream_file(joined, reference_speech_s=2.0, on_message=seen.append)
    references = [m for m in result.messages if isinstance(m, models.StreamReference)]
    assert result.ready.reference != "speaker" and len(references) == 1
    assert result.scores and result.summary.final.accepted
    assert [type(m) for m in seen] == [type(m) for m in result.messages]  # the callback saw every message in order


def test_the_stream_can_be_driven_by_hand_send_poll_end(client, enrolled, wav):
    pcm = read_wav(wav("a_snt4"))
    with client.stream_verify(enrolled.alice, sample_rate=pcm.sample_rate) as stream:
        assert stream.ready.encoding == "s16le" and stream.ready.window_s > 0
        for offset in range(0, len(pcm.data), 3200):
            stream.send(pcm.data[offset:offset + 3200])
            stream.poll()
        summary = stream.end()
    assert isinstance(summary, models.StreamSummary) and summary.final.accepted
    assert stream.result.summary is summary and stream.result.scores


def test_an_unknown_speaker_is_refused_with_the_class_of_its_code(client):
    with pytest.raises(vc.SpeakerNotFoundError) as caught:
        client.stream_verify("00000000-0000-0000-0000-000000000000")
    assert caught.value.status == 404


def test_a_wrong_key_is_refused_at_the_handshake(voiceprint_server):
    with VoiceprintClient(voiceprint_server.url, api_key="vp_wrong.key") as wrong, \
            pytest.raises(vc.AuthenticationFailed):
        wrong.stream_verify()


def test_recordings_are_decided_against_the_first_and_a_refused_one_does_not_end_the_session(client, wav):
    with client.recordings_session() as session:
        reference = session.send(wav("a_snt1"))
        assert isinstance(reference, models.RecordingReference) and reference.speech_s > 1
        same = session.send(wav("a_snt5"))
        other = session.send(wav("b_snt5"))
        assert isinstance(same, models.RecordingResult) and same.accepted and same.verification_result
        assert not other.accepted
        with pytest.raises(vc.NoSpeechError) as caught:
            session.send(("silence.wav", silence_wav()))
        assert caught.value.fatal is False
        assert session.send(wav("a_snt6")).accepted  # the session and its reference are still there
        session.reset()
        assert isinstance(session.send(wav("b_snt1")), models.RecordingReference)
        assert session.send(wav("b_snt6")).accepted


def test_the_async_helpers_stream_both_protocols(voiceprint_server, enrolled, wav):
    pcm = read_wav(wav("a_snt5"))

    async def run():
        async with vc.AsyncVoiceprintClient(voiceprint_server.url, api_key=voiceprint_server.api_key) as vp:
            stream = await vp.stream_verify(enrolled.alice)
            async with stream:
                await stream.send(pcm.data)
                summary = await stream.end()
            session = await vp.recordings_session()
            async with session:
                await session.send(wav("b_snt1"))
                result = await session.send(wav("b_snt2"))
            return summary, result

    summary, result = run_async(run())
    assert summary.final.accepted and result.accepted
