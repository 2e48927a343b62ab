"""A graph whose node returns as many bytes as its state asks for: for the frame size limit."""

from awe import END, Graph


def grow(state):
    return {"blob": "x" * state["size"]}


bloat = Graph("bloat")
bloat.add_node("grow", grow)
bloat.add_edge("grow", END)
bloat.set_entry_point("grow")
