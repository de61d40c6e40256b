from pydantic import BaseModel

from streamboot import Message, StreamHandler


class Paid(BaseModel):
    order_id: str


class AsyncOne(StreamHandler[Paid]):
    async def handle(self, message: Message[Paid]) -> None:
        return None


class SyncOne(StreamHandler[dict[str, str]]):
    def handle(self, message: Message[dict[str, str]]) -> None:
        return None


class Derived(AsyncOne):
    pass


def test_payload_model_comes_from_the_generic_parameter() -> None:
    assert AsyncOne.payload_model is Paid
    assert SyncOne.payload_model is None  # raw fields, no validation
    assert Derived.payload_model is Paid  # inherited


def test_sync_or_async_is_detected() -> None:
    assert AsyncOne.is_async()
    assert not SyncOne.is_async()
