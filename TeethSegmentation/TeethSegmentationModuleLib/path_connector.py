"""A parameter-node GUI connector: ctkPathLineEdit <-> str.

Slicer's own connector binds ctkPathLineEdit to pathlib.Path, and ``pathlib.Path("")`` is ".", so an
empty field showed "." and round-tripped as the current folder. With ``str`` parameters, "" stays empty.
Registered when this module is imported (Base/Python/slicer/parameterNodeWrapper/guiConnectors.py).
"""

import ctk
from slicer.parameterNodeWrapper import GuiConnector, parameterNodeGuiConnector, unannotatedType


@parameterNodeGuiConnector
class PathLineEditToStrConnector(GuiConnector):
    """ctkPathLineEdit <-> str: an empty field stays empty (pathlib.Path("") would show as ".")."""

    @staticmethod
    def canRepresent(widget, datatype) -> bool:
        return type(widget) is ctk.ctkPathLineEdit and unannotatedType(datatype) is str

    @staticmethod
    def create(widget, datatype):
        return PathLineEditToStrConnector(widget) if PathLineEditToStrConnector.canRepresent(widget, datatype) else None

    def __init__(self, widget) -> None:
        super().__init__()
        self._widget = widget

    def _connect(self):
        self._widget.currentPathChanged.connect(self.changed)

    def _disconnect(self):
        self._widget.currentPathChanged.disconnect(self.changed)

    def widget(self):
        return self._widget

    def read(self) -> str:
        return self._widget.currentPath

    def write(self, value: str) -> None:
        self._widget.currentPath = value
