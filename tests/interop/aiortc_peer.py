"""A third-party WebRTC peer (aiortc, from PyPI) for crates/media/tests/interop.rs.

Line protocol on stdin/stdout, one JSON object per line:
  in:  {"offer": sdp} then {"candidate": ..., "sdpMid": ..., "sdpMLineIndex": ...}
       (an empty candidate: end of candidates)
  out: {"answer": sdp}, then {"frames": n, "audio": n, "width": w, "height": h}
       each time a picture from the far end is decoded, and {"error": text}.
It sends aiortc's own test picture (H.264, 640x480) and audio back.
"""

import asyncio
import json
import sys

from aiortc import RTCPeerConnection, RTCSessionDescription, VideoStreamTrack
from aiortc.mediastreams import AudioStreamTrack
from aiortc.sdp import candidate_from_sdp


def say(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def main():
    pc = RTCPeerConnection()
    counts = {"frames": 0, "audio": 0, "width": 0, "height": 0}

    @pc.on("track")
    def on_track(track):
        async def drain():
            while True:
                try:
                    frame = await track.recv()
                except Exception:
                    return
                if track.kind == "video":
                    counts["frames"] += 1
                    counts["width"], counts["height"] = frame.width, frame.height
                    say(counts)
                else:
                    counts["audio"] += 1

        asyncio.ensure_future(drain())

    loop = asyncio.get_event_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            break
        msg = json.loads(line)
        if "offer" in msg:
            # Tracks first: the offer's m-sections then take these transceivers.
            pc.addTrack(VideoStreamTrack())  # aiortc's own: a green picture
            pc.addTrack(AudioStreamTrack())
            await pc.setRemoteDescription(RTCSessionDescription(msg["offer"], "offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            say({"answer": pc.localDescription.sdp})
        elif "candidate" in msg:
            text = msg["candidate"]
            if not text:
                continue  # end of candidates: aiortc needs no marker
            c = candidate_from_sdp(text.split(":", 1)[1])
            c.sdpMid, c.sdpMLineIndex = msg.get("sdpMid"), msg.get("sdpMLineIndex")
            await pc.addIceCandidate(c)
    await pc.close()


asyncio.run(main())
