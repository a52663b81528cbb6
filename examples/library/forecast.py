import asyncio

from pydantic import BaseModel

import duragent


class Forecast(BaseModel):
    city: str
    temperature_c: float


@duragent.tool
async def weather(city: str) -> str:
    """Current temperature in a city, in Celsius."""
    return "21.5"


forecaster = duragent.Agent(
    name="forecaster",
    instructions="Report the weather of the city you are given.",
    tools=[weather],
    output_type=Forecast,
)


async def main() -> None:
    client = await duragent.connect()
    async with duragent.Worker(client, agents=[forecaster]):
        forecast = await duragent.run(client, forecaster, "What is the weather in Lyon?")
    print(forecast)


asyncio.run(main())
