"""Chinese camera and scene words, read as the English words the engines look for.

Prompts may be written in Chinese. The motion engine's readers of a prompt (the camera
move, the scene's sound, the painted picture) look for English words; ``in_english``
puts the English word beside each Chinese word or phrase it knows, so that those readers
understand both languages with one set of rules. Longer phrases are matched first
(向左平移 "pan left" before 平移 "pan").
"""

from __future__ import annotations

import re

__all__ = ["in_english"]

_WORDS: dict[str, str] = {
    # camera moves
    "固定镜头": "static camera",
    "静止镜头": "static camera",
    "镜头静止": "static camera",
    "镜头不动": "static camera",
    "镜头固定": "static camera",
    "拉远": "pull out",
    "拉出": "pull out",
    "后拉": "pull back",
    "镜头后退": "pull back",
    "推近": "push in",
    "推进": "push in",
    "拉近": "push in",
    "放大": "zoom in",
    "缩小": "zoom out",
    "靠近": "moving closer",
    "向左平移": "pan left",
    "向右平移": "pan right",
    "左移": "pan left",
    "右移": "pan right",
    "左摇": "pan left",
    "右摇": "pan right",
    "平移": "camera pan",
    "摇镜": "camera pan",
    "向上倾斜": "tilt up",
    "向下倾斜": "tilt down",
    "上摇": "tilt up",
    "下摇": "tilt down",
    "升起": "crane up",
    "降下": "crane down",
    "倾斜": "camera tilt",
    "环绕": "orbit",
    "绕拍": "orbit",
    "缓缓": "slowly",
    "慢慢": "slowly",
    # scenes: sounds and painted pictures
    "海浪": "waves",
    "海边": "beach",
    "大海": "sea",
    "海": "sea",
    "湖": "lake",
    "河": "river",
    "下雨": "rain",
    "雨": "rain",
    "暴风": "storm",
    "雷": "thunder",
    "风": "wind",
    "山": "mountains",
    "沙漠": "desert",
    "城市": "city",
    "街道": "street",
    "街": "street",
    "车流": "traffic",
    "森林": "forest",
    "树林": "woods",
    "花园": "garden",
    "公园": "park",
    "鸟": "birds",
    "篝火": "campfire",
    "壁炉": "fireplace",
    "火": "fire",
    "人群": "crowd",
    "市场": "market",
    "咖啡馆": "cafe",
    "餐厅": "restaurant",
    "安静": "quiet",
    "图书馆": "library",
    "雪": "snow",
    "冬天": "winter",
    "日落": "sunset",
    "黄昏": "dusk",
    "日出": "sunrise",
    "黎明": "dawn",
    "夜晚": "night",
    "夜": "night",
}
_PHRASE = re.compile("|".join(sorted(map(re.escape, _WORDS), key=len, reverse=True)))


def in_english(text: str) -> str:
    """``text`` with the English word written after each Chinese word this module knows
    (unchanged where there are none)."""
    if not _PHRASE.search(text):
        return text
    return _PHRASE.sub(lambda found: f"{found.group(0)} {_WORDS[found.group(0)]} ", text)
