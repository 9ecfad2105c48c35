"""The handouts' pictures, drawn by the kit: `python docs/figures/make.py` writes them beside this file.

    designs.png       the three designs: who holds the listening socket and each client's socket, and who
                      closes which (as CS:APP's Figures 12.3 and 12.4 show the process server)
    closed_loop.png   locust's closed loop: N users, each waiting for its reply (R), then waiting (Z)
    listen_queue.png  the listen queue: connections the kernel has accepted, waiting for accept()

The files are written without a timestamp, so that drawing them again gives the same bytes (a kit test
checks that the committed pictures are the ones this script draws). ALT holds each picture's alt text,
which the handouts use.
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

HERE = Path(__file__).resolve().parent
ALT = {
    "designs.png": "Three panels. Single: one process holds the listening socket and serves one client "
    "socket at a time. Multiprocess: the parent accepts, starts a child that gets a copy of the client "
    "socket, and closes its own copy; the child serves and closes. Multithread: one process, the main "
    "thread accepts, and each client's thread serves its socket and closes it.",
    "closed_loop.png": "A cycle of one locust user: send a request, wait R for the reply, wait Z, send "
    "again. With N users the throughput X is N / (R + Z), never more than N / Z.",
    "listen_queue.png": "Clients connect; the kernel completes each handshake and puts the connection in "
    "the listen queue (its length is the backlog); the server takes one at a time with accept(). A full "
    "queue drops new connections, which the clients retry after a delay.",
}
COLORS = {"process": "#dbe9f6", "thread": "#fde8c8", "socket": "#ffffff", "closed": "#f4c7c3", "queue": "#e2f0d9"}


def box(axes, x, y, w, h, text, color, size=9, style="round,pad=0.02"):
    axes.add_patch(FancyBboxPatch((x, y), w, h, boxstyle=style, facecolor=color, edgecolor="#333333", lw=1))
    axes.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=size, wrap=True)


def arrow(axes, start, end, text="", style="-|>", color="#333333", size=8, offset=(0, 0.03)):
    axes.add_patch(FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=12, color=color, lw=1.2))
    if text:
        middle = ((start[0] + end[0]) / 2 + offset[0], (start[1] + end[1]) / 2 + offset[1])
        axes.text(*middle, text, ha="center", va="bottom", fontsize=size, color=color)


def canvas(width: float, height: float, panels: int = 1):
    figure, axes = plt.subplots(1, panels, figsize=(width, height))
    for each in axes if panels > 1 else [axes]:
        each.set_xlim(0, 1)
        each.set_ylim(0, 1)
        each.axis("off")
    return figure, axes


def designs(path: Path) -> None:
    figure, (single, process, thread) = canvas(13, 4.6, 3)
    single.set_title("single: one client at a time", fontsize=11)
    box(single, 0.05, 0.1, 0.9, 0.78, "", COLORS["process"])
    single.text(0.5, 0.82, "the server's process (its main thread)", ha="center", fontsize=9)
    box(single, 0.12, 0.58, 0.32, 0.14, "listening\nsocket", COLORS["socket"])
    box(single, 0.56, 0.58, 0.32, 0.14, "client socket\n(conn)", COLORS["socket"])
    arrow(single, (0.44, 0.65), (0.56, 0.65))
    single.text(0.5, 0.5, "accept() gives conn", ha="center", fontsize=8)
    said = "handle_client(conn): read, reply,\nclose; only then accept() again"
    single.text(0.5, 0.38, said, ha="center", fontsize=9)
    single.text(0.5, 0.18, "the next clients wait in the listen queue", ha="center", fontsize=8, style="italic")

    process.set_title("multiprocess: a process per client", fontsize=11)
    box(process, 0.03, 0.5, 0.44, 0.38, "", COLORS["process"])
    process.text(0.25, 0.82, "parent (the server)", ha="center", fontsize=9)
    box(process, 0.07, 0.6, 0.17, 0.14, "listening\nsocket", COLORS["socket"], size=8)
    box(process, 0.27, 0.6, 0.17, 0.14, "conn:\nclose()d", COLORS["closed"], size=8)
    box(process, 0.53, 0.05, 0.44, 0.4, "", COLORS["process"])
    process.text(0.75, 0.39, "child (one client)", ha="center", fontsize=9)
    box(process, 0.57, 0.19, 0.17, 0.14, "conn\n(a copy)", COLORS["socket"], size=8)
    box(process, 0.77, 0.19, 0.17, 0.14, "listening:\nclosed", COLORS["closed"], size=8)
    arrow(process, (0.36, 0.6), (0.62, 0.33))
    process.text(0.72, 0.5, "Process(...).start()", ha="center", fontsize=8)
    process.text(
        0.25,
        0.32,
        "the parent closes its copy\nright after start(): only\nthe child's close() then\nends the connection",
        ha="center",
        fontsize=8,
    )
    process.text(0.75, 0.09, "serves, closes, exits", ha="center", fontsize=8)

    thread.set_title("multithread: a thread per client", fontsize=11)
    box(thread, 0.05, 0.1, 0.9, 0.78, "", COLORS["process"])
    thread.text(0.5, 0.82, "one process: its threads share every socket", ha="center", fontsize=9)
    box(thread, 0.1, 0.6, 0.3, 0.14, "main thread:\naccept()", COLORS["thread"])
    for i, y in enumerate((0.42, 0.24)):
        box(thread, 0.55, y, 0.36, 0.13, f"thread {i + 1}: conn {i + 1}\nserves, then close()", COLORS["thread"], 8)
        arrow(thread, (0.4, 0.64), (0.55, y + 0.07))
    thread.text(0.25, 0.53, "Thread(...).start()", ha="center", fontsize=8)
    thread.text(0.25, 0.3, "one socket,\none owner:\nits thread\ncloses it", ha="center", fontsize=8)
    save(figure, path)


def closed_loop(path: Path) -> None:
    figure, axes = canvas(9, 3.2)
    box(axes, 0.03, 0.35, 0.2, 0.3, "N users\n(locust)", COLORS["thread"], 10)
    box(axes, 0.72, 0.35, 0.25, 0.3, "the server", COLORS["process"], 10)
    arrow(axes, (0.23, 0.58), (0.72, 0.58), "a request")
    arrow(axes, (0.72, 0.42), (0.23, 0.42), "its reply, R seconds later", offset=(0, -0.1))
    axes.annotate(
        "", xy=(0.06, 0.35), xytext=(0.2, 0.35), arrowprops={"arrowstyle": "-|>", "connectionstyle": "arc3,rad=-1.2"}
    )
    axes.text(0.13, 0.06, "then waits Z seconds (wait_time)", ha="center", fontsize=9)
    axes.text(
        0.48,
        0.84,
        "Little's law: N = X (R + Z), so the throughput X = N / (R + Z) < N / Z",
        ha="center",
        fontsize=11,
    )
    save(figure, path)


def listen_queue(path: Path) -> None:
    figure, axes = canvas(10, 3.2)
    for i, y in enumerate((0.7, 0.45, 0.2)):
        box(axes, 0.02, y, 0.12, 0.13, f"client {i + 1}", COLORS["thread"], 8)
        arrow(axes, (0.14, y + 0.065), (0.3, 0.5), "SYN" if i == 0 else "")
    box(axes, 0.3, 0.32, 0.36, 0.36, "", COLORS["queue"])
    axes.text(0.48, 0.72, "listen queue (at most the backlog)", ha="center", fontsize=9)
    for i in range(4):
        box(axes, 0.34 + i * 0.075, 0.42, 0.05, 0.16, "", COLORS["socket"])
    axes.text(0.48, 0.35, "handshakes done, not yet accepted", ha="center", fontsize=8, style="italic")
    box(axes, 0.78, 0.38, 0.2, 0.24, "the server\naccept()", COLORS["process"], 9)
    arrow(axes, (0.66, 0.5), (0.78, 0.5))
    axes.text(0.72, 0.6, "one at a time", ha="center", fontsize=8)
    axes.text(
        0.48,
        0.1,
        "a full queue drops new SYNs: the client retries later (Linux: after 1, 3, 7 s ...)",
        ha="center",
        fontsize=9,
    )
    save(figure, path)


def save(figure, path: Path) -> None:
    figure.tight_layout()
    figure.savefig(path, dpi=100, metadata={"Software": None})  # no timestamp nor version: the same bytes again
    plt.close(figure)


DRAWINGS = {"designs.png": designs, "closed_loop.png": closed_loop, "listen_queue.png": listen_queue}


def main(folder: Path = HERE) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, draw in DRAWINGS.items():
        draw(folder / name)
        written.append(folder / name)
    return written


if __name__ == "__main__":
    for path in main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE):
        print(f"wrote {path}")
