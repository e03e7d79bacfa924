"""Seeded generator of a realistic sample survey of 利通区 (Wuzhong, Ningxia).

Writes `<out>/<kind>/<UNIT>/<ROUND>/<file>` in the templates' Chinese headers (from
`schemas/*.yaml`): buildings, bridges, hazardous-chemical sites with their inventory, and
oil/gas pipeline segments, plus a deterministic share of defective rows of every kind the
validation catches, counted in the returned summary.

    python -m pipeline.sample_data --out data_raw --buildings 20000 --seed 2023

`formats="mixed"` writes what Excel really produces (UTF-8 with BOM and CRLF, GBK, plain
UTF-8, an XLSX, headers with full-width brackets and stray spaces, one department file with
its own column names and a saved column mapping). `formats="csv"` writes every file as
plain UTF-8 CSV with the template headers; the content (values, defects) is the same.

Columns are Arrow arrays, dictionary-encoded when repetitive, so a million buildings take
seconds, not minutes. Place and company names are plausible, not an official gazetteer.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.intake.credit_code import CHARSET, check_char, is_valid
from pipeline.intake.schema import Template, load_template, towns

Rng = np.random.Generator


def _w(spec: str) -> dict[str, float]:
    """A weight table written compactly: "砖混 .5 砖木 .3" → {"砖混": 0.5, "砖木": 0.3}."""
    words = spec.split()
    return {k: float(v) for k, v in zip(words[::2], words[1::2], strict=True)}


ROUND = "2023-1"
SURVEY_FIRST = np.datetime64("2023-03-01")
SURVEY_DAYS = 214  # 2023-03-01 .. 2023-09-30
DATE_VOCAB = np.datetime_as_string(SURVEY_FIRST + np.arange(SURVEY_DAYS), unit="D")
LON_RANGE, LAT_RANGE = (105.93, 106.57), (37.65, 38.07)  # inside the templates' bounds

# ---------------------------------------------------------------------------------------
# Places and people
# ---------------------------------------------------------------------------------------
# town: (centre lon, centre lat, share of buildings, urban share)
TOWN_LAYOUT: dict[str, tuple[float, float, float, float]] = {
    "金积镇": (106.185, 37.935, 0.12, 0.35),
    "金银滩镇": (106.245, 37.965, 0.10, 0.45),
    "高闸镇": (106.150, 38.030, 0.08, 0.06),
    "扁担沟镇": (105.975, 37.725, 0.07, 0.04),
    "上桥镇": (106.100, 37.995, 0.08, 0.08),
    "古城镇": (106.290, 38.010, 0.08, 0.07),
    "金星镇": (106.225, 38.025, 0.08, 0.10),
    "胜利镇": (106.200, 37.990, 0.13, 0.60),
    "东塔寺乡": (106.300, 37.950, 0.07, 0.05),
    "板桥乡": (106.255, 37.880, 0.06, 0.05),
    "马莲渠乡": (106.345, 38.040, 0.05, 0.05),
    "郭家桥乡": (106.105, 37.870, 0.05, 0.05),
    "宁夏吴忠国家农业科技园区": (106.470, 37.790, 0.03, 0.08),
}
CORE_TOWNS = ("金积镇", "金银滩镇", "胜利镇")  # town-centre frames and shear walls
HILLY_TOWNS = ("扁担沟镇",)  # loess hills: earth houses, cave dwellings, geohazards
INDUSTRIAL_PARKS = {
    "上桥镇": (106.118, 38.008, "上桥工业园区"),
    "金积镇": (106.165, 37.918, "金积工业园区"),
}
TOWN_SHORT = {"宁夏吴忠国家农业科技园区": "农业科技园区"}
VILLAGES: dict[str, list[str]] = {
    "金积镇": "金积 田桥 大庙桥 马家湖 西滩 秦渠 关渠 苦水河".split(),
    "金银滩镇": "金银滩 李桥 喇嘛滩 杨马湖 新华桥 中庄 团庄 柳林".split(),
    "高闸镇": "高闸 韩桥 刘家湾 马家渠 郭桥 朝阳 永胜 新民".split(),
    "扁担沟镇": "扁担沟 黄沙窝 五里坡 沙坝湾 白土岗 庙山 红崖 二道沟".split(),
    "上桥镇": "上桥 下桥 牛家坊 孙家滩 巴浪湖 塔湾 穆家桥 早元".split(),
    "古城镇": "古城 古城湾 党家河湾 左营 右营 罗家湖 余家桥 兴盛".split(),
    "金星镇": "金星 周闸 蔡家桥 汉渠 园艺 东门 西门 南门".split(),
    "胜利镇": "胜利 陈袁滩 涝河桥 杨家渠 北门 唐滩 双庄 花寺".split(),
    "东塔寺乡": "东塔 石佛寺 郝渠 纳家户 胡家堡 蒋家湖 陶家圈 八家户".split(),
    "板桥乡": "板桥 潘家庄 林湖 杜家滩 吉庆 大沟湾 友爱 清水沟".split(),
    "马莲渠乡": "马莲渠 秦坝关 牛头营 双渠 吴桥 唐桥 中滩 三道湖".split(),
    "郭家桥乡": "郭家桥 郭家庄 黄花 丰收 团结 李家沟 张家湾 王团".split(),
    "宁夏吴忠国家农业科技园区": "新庄 桥头 果园 山水 红星 金塔 兴旺 利民".split(),
}
COMMUNITIES: dict[str, list[str]] = {  # other towns have one community at the town seat
    "胜利镇": "朝阳 明珠 利宁 开元 文卫 裕民".split(),
    "金银滩镇": "世纪 友谊 滨河 金花园 盛元".split(),
    "金积镇": "金积 秦渠 汉渠 红星".split(),
}
STREETS = (
    "利宁街 朝阳街 裕民街 利通街 明珠路 开元大道 文卫路 富平街 团结路 友谊路 世纪大道 "
    "新华街 秦渠路 汉渠路 金积大道 滨河大道"
).split()
ESTATES = (
    "阳光 金色家园 康馨 御景 盛世华庭 鸿泰 丽都 华府 锦绣苑 翡翠城 书香苑 水岸名居 绿洲 "
    "欣苑 和园 文苑 嘉园 福园 凤凰城 明珠花园 塞上江南 滨河湾"
).split()
SURNAMES = "马 王 李 张 杨 刘 丁 金 田 海 纳 周 吴 赵 陈 何 哈 白 苏 穆 锁 郭 冯 拓".split()
GIVEN_NAMES = (
    "伟 强 军 芳 丽 娟 海燕 建国 国庆 晓东 志刚 玉梅 秀兰 文博 学军 占林 福祥 少华 永红 "
    "春花 小龙 慧 静 磊 鹏 建军 玉兰 有福 金花 德明 忠 成 文清 红梅"
).split()
COMPANY_ROOTS = (
    "宏达 鑫源 恒泰 华瑞 天元 瑞丰 金海 博远 润泽 正阳 嘉禾 永盛 昊泽 聚源 德润 泰和 银丰 "
    "明阳 庆华 金鼎 兴元 汇通 安泰 盛源 天润 众鑫 凯达 广源 丰泽 利丰 宁鑫 久安 新源 亿达 "
    "伟业 荣华 锦程 瑞祥 华宇 康源 金宇 塞北 朔方 秦汉 宏图"
).split()
INDUSTRIES = "食品 清真食品 乳业 建材 机械 羊绒制品 饲料 物流 塑业 农业科技 酿造 包装".split()
OFFICES = "住建 交通 市政 供销 农业 水务".split()
ZU = "一 二 三 四 五 六 七 八 九 十 十一 十二".split()
REMARKS = "户主外出务工 无人居住 新建未入住 部分出租 老人独居".split()

# ---------------------------------------------------------------------------------------
# Buildings
# ---------------------------------------------------------------------------------------
EDU_SHARE, MED_SHARE = 0.006, 0.003  # of all buildings: school and health-care buildings
USE_MIX = {
    "core": _w("住宅 .70 办公 .06 商业 .13 厂房 .04 仓库 .03 养老机构 .005 宗教 .01 其他 .025"),
    "seat": _w("住宅 .78 办公 .06 商业 .10 厂房 .02 仓库 .02 养老机构 .005 宗教 .01 其他 .005"),
    "rural": _w("住宅 .90 办公 .012 商业 .02 厂房 .025 仓库 .025 养老机构 .002 宗教 .008 其他 .008"),
}
STRUCTURE_MIX = {  # key: a use, or 住宅:<setting>; 卫生室 are village clinics
    "住宅:core": _w("砖混 .34 框架 .16 剪力墙 .2 框架-剪力墙 .1 底部框架-抗震墙 .1 混杂结构 .03 砖木 .05 其他 .02"),
    "住宅:seat": _w("砖混 .62 框架 .14 底部框架-抗震墙 .08 砖木 .1 混杂结构 .06"),
    "住宅:rural": _w("砖混 .5 砖木 .25 土木(生土) .14 混杂结构 .06 框架 .02 轻钢 .01 窑洞 .01 石木 .01"),
    "住宅:hilly": _w("砖混 .36 砖木 .22 土木(生土) .24 窑洞 .1 石木 .05 混杂结构 .03"),
    "办公": _w("框架 .5 砖混 .44 框架-剪力墙 .06"),
    "商业": _w("框架 .4 砖混 .33 底部框架-抗震墙 .15 轻钢 .07 钢结构 .05"),
    "厂房": _w("轻钢 .4 钢结构 .25 框架 .17 砖混 .15 砖木 .03"),
    "仓库": _w("轻钢 .5 钢结构 .15 砖混 .27 砖木 .08"),
    "养老机构": _w("框架 .45 砖混 .55"),
    "宗教": _w("砖混 .45 框架 .35 砖木 .2"),
    "其他": _w("砖混 .5 砖木 .3 轻钢 .2"),
    "学校": _w("框架 .55 砖混 .4 框架-剪力墙 .05"),
    "幼儿园": _w("框架 .5 砖混 .5"),
    "医院": _w("框架 .55 框架-剪力墙 .12 砖混 .33"),
    "卫生室": _w("砖混 .85 框架 .15"),
}
# structure: ((lo, mode, hi) storeys in town centres, (lo, mode, hi) elsewhere)
FLOORS: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    "砖混": ((2, 6, 7), (1, 1, 4)),
    "砖木": ((1, 1, 2), (1, 1, 2)),
    "土木(生土)": ((1, 1, 1), (1, 1, 1)),
    "石木": ((1, 1, 1), (1, 1, 1)),
    "窑洞": ((1, 1, 1), (1, 1, 1)),
    "框架": ((2, 6, 12), (1, 3, 6)),
    "框架-剪力墙": ((8, 14, 26), (6, 9, 14)),
    "剪力墙": ((11, 18, 33), (9, 12, 18)),
    "底部框架-抗震墙": ((3, 5, 7), (3, 4, 6)),
    "钢结构": ((1, 1, 4), (1, 1, 3)),
    "轻钢": ((1, 1, 2), (1, 1, 2)),
    "混杂结构": ((1, 2, 3), (1, 2, 3)),
    "其他": ((1, 1, 2), (1, 1, 2)),
}
# structure: (earliest, most common, latest) year built
YEARS: dict[str, tuple[int, int, int]] = {
    "土木(生土)": (1960, 1982, 2005),
    "窑洞": (1960, 1975, 2000),
    "石木": (1960, 1980, 2005),
    "砖木": (1965, 1990, 2012),
    "砖混": (1978, 2004, 2023),
    "框架": (1990, 2010, 2023),
    "框架-剪力墙": (1998, 2012, 2023),
    "剪力墙": (2003, 2014, 2023),
    "底部框架-抗震墙": (1988, 2000, 2012),
    "钢结构": (2000, 2012, 2023),
    "轻钢": (2003, 2014, 2023),
    "混杂结构": (1975, 1995, 2015),
    "其他": (1970, 2000, 2023),
}
ENGINEERED = ("框架", "框架-剪力墙", "剪力墙", "底部框架-抗震墙", "钢结构")
MASONRY = ("砖混", "砖木", "土木(生土)", "石木", "混杂结构")
TRADITIONAL = ("砖木", "土木(生土)", "石木", "窑洞", "混杂结构", "其他")
SELF_BUILT_MIX = {  # 自建房安全排查结论 by the house's state
    "damaged": _w("存在严重安全隐患 .35 存在一般安全隐患 .45 未发现安全隐患 .2"),
    "traditional": _w("存在严重安全隐患 .04 存在一般安全隐患 .26 未发现安全隐患 .7"),
    "other": _w("存在严重安全隐患 .005 存在一般安全隐患 .08 未发现安全隐患 .915"),
}
DAMAGE_RATE = _w("土木(生土) .09 窑洞 .12 石木 .07 砖木 .05 砖混 .022 混杂结构 .05 其他 .03")
# use: (footprint median m², lognormal sigma, storey height m, m² per occupant)
USE_SIZE: dict[str, tuple[float, float, float, float]] = {
    "住宅": (130, 0.3, 3.0, 0),
    "办公": (420, 0.5, 3.4, 20),
    "商业": (300, 0.8, 3.9, 12),
    "厂房": (1100, 0.8, 5.0, 60),
    "仓库": (800, 0.7, 5.5, 400),
    "养老机构": (600, 0.4, 3.3, 25),
    "宗教": (350, 0.5, 4.5, 6),
    "其他": (120, 0.6, 3.3, 40),
    "学校": (900, 0.5, 3.8, 6),
    "幼儿园": (500, 0.4, 3.6, 8),
    "医院": (1000, 0.7, 4.0, 15),
}
# school kind: (weight, use, name suffix, storey cap, footprint median m²)
SCHOOL_KINDS: dict[str, tuple[float, str, str, int, float]] = {
    "village_primary": (0.35, "学校", "小学", 3, 500),
    "central_primary": (0.15, "学校", "中心小学", 5, 900),
    "middle": (0.15, "学校", "中学", 5, 1100),
    "village_kg": (0.2, "幼儿园", "幼儿园", 3, 420),
    "central_kg": (0.05, "幼儿园", "中心幼儿园", 3, 700),
    "urban": (0.1, "学校", "", 6, 1200),
}
SCHOOL_LABELS = _w("教学楼 .45 综合楼 .15 宿舍楼 .12 食堂 .12 实验楼 .08 办公楼 .08")
KG_LABELS = _w("教学楼 .5 保育楼 .3 综合楼 .2")
# health facility: (weight, storey cap, footprint median m²)
MED_KINDS: dict[str, tuple[float, int, float]] = {
    "district": (0.15, 12, 1500),
    "community": (0.1, 4, 500),
    "town": (0.35, 4, 600),
    "village": (0.4, 1, 90),
}
DISTRICT_HOSPITALS = ("利通区人民医院", "利通区中医医院", "利通区妇幼保健计划生育服务中心")
HOSPITAL_LABELS = _w("门诊楼 .3 住院楼 .3 医技楼 .15 综合楼 .15 后勤楼 .1")

# ---------------------------------------------------------------------------------------
# Bridges
# ---------------------------------------------------------------------------------------
# size: (weight, min spans, max spans, standard span lengths m, name suffix)
BRIDGE_SIZES: dict[str, tuple[float, int, int, tuple[int, ...], str]] = {
    "small": (0.55, 1, 3, (6, 8, 10, 13), "小桥"),
    "medium": (0.35, 2, 5, (13, 16, 20), "中桥"),
    "large": (0.10, 4, 16, (20, 25, 30, 40), "大桥"),
}
# route class: (weight, routes, AADT range, lifeline share, owner unit, has a stake)
ROUTE_CLASSES: dict[str, tuple[float, list[str], tuple[int, int], float, str, bool]] = {
    "national": (0.12, ["G211", "G344"], (6000, 20000), 0.85, "宁夏公路管理中心吴忠分中心", True),
    "provincial": (0.15, ["S101", "S203", "S310"], (3000, 9000), 0.6, "宁夏公路管理中心吴忠分中心", True),
    "county": (0.25, "X101 X103 X105 X108".split(), (800, 3000), 0.15, "利通区公路管理段", True),
    "village": (0.33, "Y201 Y204 Y207 Y212 Y215".split(), (80, 800), 0.02, "利通区公路管理段", True),
    "urban": (0.15, "利宁街 开元大道 明珠路 朝阳街 滨河大道".split(), (5000, 25000), 0.35, "利通区市政管理所", False),
}
WATERWAYS = "秦渠 汉渠 马莲渠 东干渠 清水沟 苦水河 南干沟 第一排水沟 金积渠".split()
CROSSINGS = _w("河流 .6 沟谷 .15 道路 .15 铁路 .05 其他 .05")

# ---------------------------------------------------------------------------------------
# Hazardous chemicals, GB 18218-2018 (rules-reference.md §3)
# ---------------------------------------------------------------------------------------
CATEGORY_Q = _w(
    "J1 5 J2 50 J3 50 J4 50 J5 500 W1.1 1 W1.2 10 W1.3 50 W2 10 W3 150 W4 50 W5.1 10 W5.2 50 "
    "W5.3 1000 W5.4 5000 W6.1 10 W6.2 50 W7.1 10 W7.2 50 W8 50 W9.1 50 W9.2 200 W10 200 W11 200"
)
CATEGORY_BETA = _w("J1 4 J2 1 J3 2 J4 2 J5 1 W1.1 2 W1.2 2 W1.3 2 W2 1.5 W5.1 1.5 W6.1 1.5 W7.1 1.5")


@dataclass(frozen=True)
class Chemical:
    cas: str
    category: str
    named_q: float | None = None  # critical quantity when named in GB 18218 table 1
    named_beta: float | None = None  # correction factor of the named toxic gases
    mixture: bool = False  # CAS often left as "/" on the form

    @property
    def q(self) -> float:
        return self.named_q if self.named_q is not None else CATEGORY_Q[self.category]

    @property
    def beta(self) -> float:
        return self.named_beta or CATEGORY_BETA.get(self.category, 1.0)


CHEMICALS: dict[str, Chemical] = {
    "液氨": Chemical("7664-41-7", "J3", 10, 2),
    "液氯": Chemical("7782-50-5", "J3", 5, 4),
    "二氧化硫": Chemical("7446-09-5", "J3", 20, 2),
    "硫化氢": Chemical("7783-06-4", "J3", 5, 5),
    "环氧乙烷": Chemical("75-21-8", "W2", 10, 2),
    "光气": Chemical("75-44-5", "J1", 0.3, 20),
    "甲醇": Chemical("67-56-1", "W5.3", 500),
    "液化石油气": Chemical("68476-85-7", "W2", 50, mixture=True),
    "液化天然气": Chemical("8006-14-2", "W2", 50, mixture=True),
    "汽油": Chemical("86290-81-5", "W5.3", 200, mixture=True),
    "柴油": Chemical("68334-30-5", "W5.4", mixture=True),
    "氢气": Chemical("1333-74-0", "W2", 5),
    "乙炔": Chemical("74-86-2", "W2", 1),
    "液氧": Chemical("7782-44-7", "W4", 200),
    "电石": Chemical("75-20-7", "W11", 100),  # 碳化钙, GB 18218-2018 Table 1
    "过氧化氢溶液": Chemical("7722-84-1", "W9.2"),
    "苯": Chemical("71-43-2", "W5.3", 50),
    "甲苯": Chemical("108-88-3", "W5.3", 500),
    "二甲苯": Chemical("1330-20-7", "W5.4"),
    "乙醇": Chemical("64-17-5", "W5.3", 500),
    "丙酮": Chemical("67-64-1", "W5.3", 500),
    "乙酸丁酯": Chemical("123-86-4", "W5.4"),
}
NAMED_TOXIC = ("液氨", "液氯", "二氧化硫", "硫化氢", "环氧乙烷", "光气")  # category may be blank


@dataclass(frozen=True)
class Archetype:
    weight: float
    site_kind: str
    in_park: bool
    names: tuple[str, ...]  # {root} and {town} are filled in
    stock: tuple[tuple[str, float, float, float, str], ...]  # chemical, min t, max t, p, unit


SITE_ARCHETYPES: dict[str, Archetype] = {
    "fuel": Archetype(
        0.3, "经营(带储存)", False,
        ("利通区{root}加油站", "吴忠市{root}石油销售有限公司{town}加油站"),
        (("汽油", 20, 60, 1, "油罐区"), ("柴油", 20, 90, 1, "油罐区"),
         ("液化石油气", 5, 18, 0.2, "LPG储罐区")),
    ),
    "gas": Archetype(
        0.1, "储存", False, ("吴忠市{root}燃气有限公司{town}储配站",),
        (("液化石油气", 70, 300, 1, "LPG储罐区"), ("液化天然气", 20, 120, 0.6, "LNG储罐区"),
         ("柴油", 1, 5, 0.5, "发电机油库")),
    ),
    "cold": Archetype(
        0.15, "使用", True,
        ("宁夏{root}乳业有限公司", "宁夏{root}清真食品有限公司", "吴忠{root}冷链物流有限公司"),
        (("液氨", 2, 16, 1, "制冷机房"), ("柴油", 2, 10, 0.6, "锅炉房油库"),
         ("液化天然气", 5, 25, 0.4, "LNG气化站"), ("过氧化氢溶液", 2, 10, 0.4, "危化品库房")),
    ),
    "water": Archetype(
        0.07, "使用", False, ("利通区{root}水厂", "吴忠市{root}供水有限公司"),
        (("液氯", 1, 7, 1, "加氯间"), ("柴油", 1, 4, 0.8, "发电机油库")),
    ),
    "chemical": Archetype(
        0.2, "生产", True,
        ("宁夏{root}化工有限公司", "宁夏{root}新材料科技有限公司", "宁夏{root}精细化工有限公司"),
        (("甲醇", 60, 900, 0.8, "甲醇罐区"), ("液氨", 2, 30, 0.5, "液氨罐区"),
         ("硫化氢", 0.2, 2, 0.4, "脱硫装置"), ("二氧化硫", 2, 20, 0.4, "制酸装置"),
         ("氢气", 0.2, 2, 0.5, "加氢装置"), ("电石", 100, 1500, 0.3, "电石库房"),
         ("苯", 5, 30, 0.3, "苯储罐区"), ("环氧乙烷", 1, 6, 0.15, "环氧乙烷罐区"),
         ("光气", 0.05, 0.3, 0.05, "光气合成装置")),
    ),
    "gases": Archetype(
        0.08, "生产", True, ("吴忠{root}工业气体有限公司",),
        (("液氧", 30, 250, 1, "液氧储罐区"), ("乙炔", 0.2, 1.5, 0.8, "乙炔充装车间"),
         ("氢气", 0.2, 2, 0.6, "氢气充装间")),
    ),
    "solvent": Archetype(
        0.1, "使用", True, ("宁夏{root}制药有限公司", "宁夏{root}涂料有限公司"),
        (("乙醇", 10, 200, 0.8, "溶剂罐区"), ("丙酮", 5, 80, 0.6, "溶剂罐区"),
         ("甲苯", 5, 60, 0.5, "溶剂罐区"), ("二甲苯", 5, 60, 0.5, "危化品库房"),
         ("乙酸丁酯", 5, 40, 0.4, "危化品库房"), ("甲醇", 5, 60, 0.4, "溶剂罐区")),
    ),
}  # fmt: skip
STORAGE_UNIT_SUFFIXES = ("罐区", "库房", "油库")
SITE_FLAGS = _w(  # share of sites answering 是
    "tanks_anchored .75 secondary_containment .85 emergency_shutoff .8 flexible_joints .6 "
    "gas_detection .9 emergency_plan_filed .9"
)
GRADES = ((100, "一级"), (50, "二级"), (10, "三级"), (0, "四级"))  # R thresholds


# ---------------------------------------------------------------------------------------
# Pipelines
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PipelineLine:
    name: str
    prefix: str
    operator: str
    medium: str
    material: str
    steel_grade: str
    diameter_mm: float
    wall_mm: float
    pressure_mpa: float
    year: int
    path: tuple[tuple[float, float], ...]  # polyline across the district
    town_names: bool = False  # this operator lists towns by name, separated by "、"


PIPELINE_LINES = (
    PipelineLine(
        "西气东输二线", "GD-XQ", "国家管网集团西部管道有限责任公司", "天然气", "钢管(直缝焊)",
        "X80", 1219, 18.4, 12, 2011,
        ((105.95, 37.72), (106.10, 37.84), (106.28, 37.95), (106.50, 38.05)),
    ),
    PipelineLine(
        "长庆—银川输油管道", "GD-CY", "中国石油长庆油田分公司", "原油", "钢管(螺旋焊)",
        "L360", 355.6, 7.1, 6.3, 2003,
        ((106.52, 37.80), (106.35, 37.92), (106.22, 38.00), (106.08, 38.06)),
    ),
    PipelineLine(
        "银川—吴忠成品油管道", "GD-CP", "国家管网集团西部管道有限责任公司", "成品油",
        "钢管(直缝焊)", "L360", 273.1, 6.4, 8, 2012,
        ((106.12, 38.065), (106.17, 38.02), (106.20, 37.98)), town_names=True,
    ),
    PipelineLine(
        "吴忠—灵武天然气支线", "GD-WL", "宁夏天然气管道有限责任公司", "天然气", "钢管(螺旋焊)",
        "L415", 508, 8.7, 6.3, 2008, ((106.20, 37.96), (106.16, 38.01), (106.13, 38.065)),
    ),
)  # fmt: skip


# ---------------------------------------------------------------------------------------
# Files: what each department uploads and how its Excel saved it
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FileSpec:
    unit: str
    name: str  # file name without extension
    encoding: str = "utf-8-sig"
    newline: str = "\r\n"
    xlsx: bool = False
    header_variant: bool = False  # full-width brackets, units, stray spaces
    mapping: tuple[tuple[str, str], ...] = ()  # (own header, template header)
    drop: tuple[str, ...] = ()  # template columns the department's sheet does not have
    styles: tuple[str, ...] = ()  # value spellings (content: kept in formats="csv")
    remarks: bool = False  # an extra 备注 column


GBK_TOWNS = ("扁担沟镇", "东塔寺乡", "郭家桥乡", "马莲渠乡")
PLAIN_UTF8_TOWNS = ("金银滩镇",)
VARIANT_HEADER_TOWNS = ("金积镇", "高闸镇", "郭家桥乡")
NO_TOWN_NAME_TOWNS = ("古城镇", "金星镇", "板桥乡", "宁夏吴忠国家农业科技园区")
REMARK_TOWNS = ("东塔寺乡",)
TOWN_STYLES: dict[str, tuple[str, ...]] = {
    "金积镇": ("thousands", "fullwidth"),
    "金银滩镇": ("year_suffix", "slash_unknown"),
    "高闸镇": ("yn_bool", "date_slash"),
    "扁担沟镇": ("youwu_bool", "year_month", "buxiang_unknown", "short_enum"),
    "上桥镇": ("date_cn",),
    "古城镇": ("thousands", "yn_bool"),
    "金星镇": ("fullwidth", "slash_unknown"),
    "胜利镇": ("thousands",),
    "东塔寺乡": ("year_suffix", "date_slash"),
    "板桥乡": ("youwu_bool",),
    "马莲渠乡": ("fullwidth", "date_cn", "buxiang_unknown"),
    "郭家桥乡": ("year_month", "slash_unknown"),
}
WJJ_MAPPING = (
    ("建筑物编号", "房屋编码"), ("楼栋名称", "建筑名称"), ("所在村(社区)", "村(社区)"),
    ("层数", "地上层数"), ("地下室层数", "地下层数"), ("总建筑面积", "建筑面积(平方米)"),
    ("建成时间", "建成年份"), ("机构名称", "产权人/使用单位"), ("日均使用人数", "常住(使用)人数"),
    ("排查日期", "调查日期"), ("排查人员", "调查人"),
)  # fmt: skip
HEADER_VARIANTS = {
    "建筑面积(平方米)": "建筑面积（㎡）",
    "建筑高度(米)": "建筑高度（m）",
    "最大跨径(米)": "最大跨径（m）",
    "桥梁全长(米)": "桥梁全长（m）",
    "斜交角(度)": "斜交角（°）",
}

# ---------------------------------------------------------------------------------------
# Defects: what the validation catches (rows chosen deterministically from the seed)
# ---------------------------------------------------------------------------------------
DEFECT_KINDS = (
    "missing_required", "non_numeric", "out_of_range", "coord_outside", "not_allowed",
    "town_unknown", "town_mismatch", "unit_unknown", "bad_date", "year_after_survey",
    "duplicate_id", "exact_duplicate", "span_gt_length", "bad_check_digit", "unknown_site",
    "unknown_town_in_list",
)  # fmt: skip
DEFECT_WEIGHTS: dict[str, dict[str, float]] = {
    "buildings": _w(
        "missing_required 3 non_numeric 2 out_of_range 2 coord_outside 1.5 not_allowed 2 "
        "town_unknown 1 town_mismatch 1 unit_unknown 1 bad_date 1 year_after_survey 1 "
        "duplicate_id 1 exact_duplicate 1"
    ),
    "bridges": _w(
        "span_gt_length 3 missing_required 1 bad_date .6 not_allowed .6 non_numeric .5 "
        "coord_outside .4 year_after_survey .4 duplicate_id .3"
    ),
    "hazchem_sites": _w("bad_check_digit 3 missing_required 1 bad_date .5 town_mismatch .5"),
    "hazchem_inventory": _w("unknown_site 3 missing_required 1 non_numeric 1 out_of_range .7 not_allowed .7"),
    "pipelines": _w("unknown_town_in_list 3 missing_required 1 out_of_range .5"),
}
DEFECT_MUSTS: dict[str, tuple[str, ...]] = {  # at least one of each, when the kind is big enough
    "buildings": tuple(DEFECT_WEIGHTS["buildings"]),
    "bridges": ("span_gt_length",),
    "hazchem_sites": ("bad_check_digit",),
    "hazchem_inventory": ("unknown_site",),
    "pipelines": ("unknown_town_in_list",),
}
MISSING_COLUMNS: dict[str, tuple[str, ...]] = {
    "buildings": (
        "address", "structure_type", "floors_above", "floor_area_m2", "year_built", "owner",
        "surveyor", "use", "seismic_design", "visible_damage", "urban_rural",
    ),
    "bridges": ("name", "span_count", "condition_class", "owner_unit", "year_built", "surveyor"),
    "hazchem_sites": ("contact", "phone", "population_500m", "address"),
    "hazchem_inventory": ("unit_kind", "max_quantity_t", "unit_name"),
    "pipelines": ("operator", "hca_grade", "length_km"),
}  # fmt: skip
MISSING_MARKERS = ("", "", "未知", "/")
NON_NUMERIC: dict[str, dict[str, tuple[str, ...]]] = {
    "buildings": {
        "floors_above": ("三层", "两层", "abc"),
        "floor_area_m2": ("abc", "一百二十", "见附件"),
        "year_built": ("九十年代", "八几年"),
    },
    "bridges": {"span_count": ("三孔", "多跨"), "max_span_m": ("约二十", "abc")},
    "hazchem_sites": {"population_500m": ("约两百", "较多")},
    "hazchem_inventory": {"max_quantity_t": ("二十", "若干", "abc")},
    "pipelines": {"diameter_mm": ("abc",)},
}
OUT_OF_RANGE: dict[str, dict[str, tuple[str, ...]]] = {
    "buildings": {"floors_above": ("0", "150"), "floor_area_m2": ("-120", "0", "-35.5")},
    "bridges": {"span_count": ("0",)},
    "hazchem_sites": {"population_500m": ("-5",)},
    "hazchem_inventory": {"max_quantity_t": ("-5", "-0.5")},
    "pipelines": {"design_pressure_mpa": ("0", "45")},
}
NOT_ALLOWED: dict[str, dict[str, tuple[str, ...]]] = {
    "buildings": {"structure_type": ("木结构", "砖砼", "钢混"), "use": ("住房", "民房", "自住")},
    "bridges": {"structure_type": ("板梁桥", "桁架桥"), "condition_class": ("良好", "6")},
    "hazchem_sites": {"site_kind": ("批发", "仓储")},
    "hazchem_inventory": {"unit_kind": ("仓储单元", "罐区")},
    "pipelines": {"medium": ("燃气", "石油")},
}
# Beijing (a map's default centre), lat/lon swapped, decimal point lost
OUTSIDE_COORDS = (("116.4074", "39.9042"), ("37.9652", "106.2135"), ("1062135", "379652"))
UNKNOWN_TOWN_CODES = ("640399999", "640302999")
UNKNOWN_UNITS = ("ZJW", "T109", "JTJ")
BAD_DATES = ("2023-13-45", "2023-02-30", "2023-06-31")
AFTER_SURVEY_YEARS = ("2025", "2024", "2026")


# =======================================================================================
# numpy helpers (numpy string arrays are fine for comparisons, slow to concatenate)
# =======================================================================================
def _pick(rng: Rng, table: Mapping[str, float], n: int) -> np.ndarray:
    """n draws from a {value: weight} table."""
    keys = np.array(list(table))
    p = np.fromiter(table.values(), float)
    return keys[rng.choice(len(keys), size=n, p=p / p.sum())]


def _choice(rng: Rng, values: Sequence[str], n: int) -> np.ndarray:
    return np.array(values)[rng.integers(0, len(values), n)]


def _tri_int(rng: Rng, lo: Any, mode: Any, hi: Any) -> np.ndarray:
    """Integers in [lo, hi] from a triangular distribution peaking at mode."""
    lo, mode, hi = (np.asarray(a, float) for a in (lo, mode, hi))
    x = rng.triangular(lo, np.clip(mode, lo, hi + 1), hi + 1)
    return np.minimum(np.floor(x), hi).astype(np.int64)


def _cat(*parts: Any) -> np.ndarray:
    """Element-wise concatenation of numpy strings and scalars (for small arrays)."""
    out = np.asarray(parts[0]).astype(str)
    for part in parts[1:]:
        out = np.strings.add(out, np.asarray(part).astype(str))
    return out


def _num(x: Any, decimals: int = 1) -> np.ndarray:
    """Numbers as strings, without a trailing `.0`."""
    x = np.round(np.asarray(x, float), decimals)
    return np.where(x == np.floor(x), x.astype(np.int64).astype(str), x.astype(str))


def _num1(x: float, decimals: int = 2) -> str:
    return str(_num([x], decimals)[0])


def _strings(n: int, values: Sequence[str]) -> np.ndarray:
    """An empty numpy string array wide enough for values."""
    return np.full(n, "", dtype=f"<U{max(map(len, values))}")


def _codes(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dictionary-encode a repetitive numpy string array: (int32 codes, sorted vocabulary)."""
    if len(a) == 0:
        return np.zeros(0, np.int32), np.array([""])
    vocab = np.unique(a[:: max(1, len(a) // 4096)])
    idx = np.minimum(np.searchsorted(vocab, a), len(vocab) - 1)
    miss = vocab[idx] != a
    if miss.any():
        vocab = np.union1d(vocab, a[miss])
        idx = np.searchsorted(vocab, a)
    return idx.astype(np.int32), vocab


def _lookup(keys: np.ndarray, table: Mapping[str, Any], default: Any = None) -> np.ndarray:
    """table[key] for every key, looked up once per distinct key."""
    if not len(keys):
        return np.zeros(0)
    codes, vocab = _codes(keys)
    values = [table[k] if default is None else table.get(k, default) for k in map(str, vocab)]
    return np.array(values)[codes]


def _in(a: np.ndarray, values: Sequence[str]) -> np.ndarray:
    """np.isin for a few strings: comparisons, not a sort."""
    return np.logical_or.reduce([a == v for v in values]) if len(values) else np.zeros(len(a), bool)


def _yes(mask: np.ndarray) -> np.ndarray:
    return np.where(mask, "是", "否")


def _names(rng: Rng, n: int) -> np.ndarray:
    return _cat(_choice(rng, SURNAMES, n), _choice(rng, GIVEN_NAMES, n))


def _team(rng: Rng, size: int) -> np.ndarray:
    return np.unique(_names(rng, size * 2))[:size]


def _town_tables() -> tuple[list[str], list[str], np.ndarray]:
    """Town codes and names (reference/towns.csv order) and their layout rows."""
    codes = list(towns())
    names = [towns()[c] for c in codes]
    return codes, names, np.array([TOWN_LAYOUT[n] for n in names])


def _town_draw(rng: Rng, n: int) -> np.ndarray:
    layout = _town_tables()[2]
    return rng.choice(len(layout), size=n, p=layout[:, 2] / layout[:, 2].sum())


def _scatter(rng: Rng, centre: np.ndarray, sigma: Any) -> tuple[np.ndarray, np.ndarray]:
    """Points around centres (n×2 lon/lat), kept inside the district."""
    n = len(centre)
    lon = np.clip(centre[:, 0] + rng.normal(0, 1, n) * sigma, *LON_RANGE)
    lat = np.clip(centre[:, 1] + rng.normal(0, 0.8, n) * sigma, *LAT_RANGE)
    return np.round(lon, 6), np.round(lat, 6)


def _campaign_days(rng: Rng, n: int, start: int, length: int) -> np.ndarray:
    return np.minimum(start + rng.integers(0, length, n), SURVEY_DAYS - 1)


# =======================================================================================
# Arrow helpers and the Frame (one kind's rows)
# =======================================================================================
def _indexed(idx: Any, vocab: Sequence[Any]) -> pa.DictionaryArray:
    codes = pa.array(np.asarray(idx, np.int32))
    return pa.DictionaryArray.from_arrays(codes, pa.array([str(v) for v in vocab], pa.string()))


def _col(x: Any, n: int = 0) -> pa.Array:
    """A column as an Arrow array: numpy strings dictionary-encoded, numbers kept numeric."""
    if isinstance(x, pa.ChunkedArray):
        return x.combine_chunks()
    if isinstance(x, pa.Array):
        return x
    if isinstance(x, str):
        return _indexed(np.zeros(n, np.int32), [x])
    a = np.asarray(x)
    if a.dtype.kind == "U":
        return _indexed(*_codes(a))
    if a.dtype.kind == "O":
        return pa.array(["" if v is None else str(v) for v in a], pa.string())
    return pa.array(a, from_pandas=True)


def _text(x: Any) -> pa.Array:
    """A column as Arrow strings, blanks for nulls."""
    a = _col(x)
    if pa.types.is_dictionary(a.type):
        a = a.dictionary_decode()
    if not pa.types.is_string(a.type):
        a = pc.cast(a, pa.string())
    return pc.fill_null(a, "")


def _arg(x: Any) -> Any:
    return x if isinstance(x, str) else _text(x)


def _join(*parts: Any) -> pa.Array:
    return pc.binary_join_element_wise(*map(_arg, parts), "")


def _if(mask: np.ndarray, a: Any, b: Any) -> pa.Array:
    return pc.if_else(pa.array(np.asarray(mask, bool)), _arg(a), _arg(b))


def _vmap(a: np.ndarray, fn: Callable[[str], str]) -> pa.DictionaryArray:
    """fn applied to a repetitive string array, once per distinct value."""
    codes, vocab = _codes(a)
    return _indexed(codes, [fn(str(v)) for v in vocab])


def _draw(rng: Rng, values: Sequence[str], n: int) -> pa.DictionaryArray:
    return _indexed(rng.integers(0, len(values), n), values)


def _masked(values: np.ndarray, blank: np.ndarray) -> pa.Array:
    """Numbers with blanks (nulls) where blank is true."""
    return pa.array(values, mask=np.asarray(blank, bool))


def _parts(x: Any, n: int) -> tuple[np.ndarray, list[str]]:
    """(codes, vocabulary) of a dictionary array, a repetitive numpy string array or a string."""
    if isinstance(x, str):
        return np.zeros(n, np.int64), [x]
    if isinstance(x, pa.DictionaryArray):
        return x.indices.to_numpy(zero_copy_only=False).astype(np.int64), x.dictionary.to_pylist()
    codes, vocab = _codes(np.asarray(x))
    return codes.astype(np.int64), [str(v) for v in vocab]


def _combo(*parts: Any) -> pa.DictionaryArray:
    """Element-wise join of repetitive columns, done on their vocabularies: the million rows
    only carry codes (mixed-radix over the parts), never a copied string."""
    n = next(len(p) for p in parts if not isinstance(p, str))
    split = [_parts(p, n) for p in parts]
    codes = np.zeros(n, np.int64)
    for c, vocab in split:
        codes = codes * len(vocab) + c
    size = int(np.prod([len(v) for _, v in split], dtype=float))
    used = np.arange(size) if size <= 100_000 else np.unique(codes)
    words = [""] * len(used)
    rest = used.copy()
    for _, vocab in reversed(split):
        digit, rest = rest % len(vocab), rest // len(vocab)
        words = [vocab[d] + w for d, w in zip(digit, words, strict=True)]
    return _indexed(codes if size <= 100_000 else np.searchsorted(used, codes), words)


def _choose(conds: Sequence[np.ndarray], choices: Sequence[Any], default: Any) -> pa.DictionaryArray:
    """np.select over repetitive columns: the vocabularies are stacked, the codes selected."""
    n = len(conds[0])
    split = [_parts(c, n) for c in [*choices, default]]
    offsets = np.cumsum([0] + [len(v) for _, v in split])
    codes = [c + off for (c, _), off in zip(split, offsets, strict=False)]
    return _indexed(np.select(conds, codes[:-1], codes[-1]), [w for _, v in split for w in v])


@dataclass
class Frame:
    """One kind's rows: Arrow columns by template key, and the file group of each row."""

    cols: dict[str, pa.Array]
    group: np.ndarray

    @classmethod
    def build(cls, columns: Mapping[str, Any], group: Any, n: int) -> Frame:
        groups = np.full(n, group) if isinstance(group, str) else np.asarray(group)
        return cls({k: _col(v, n) for k, v in columns.items()}, groups)

    @classmethod
    def from_rows(cls, rows: Sequence[Mapping[str, Any]], keys: Sequence[str], group: str) -> Frame:
        columns = {k: np.array([str(r.get(k, "")) for r in rows], dtype=object) for k in keys}
        return cls.build(columns, group, len(rows))

    def __len__(self) -> int:
        return len(self.group)

    def __contains__(self, col: str) -> bool:
        return col in self.cols

    def text(self, col: str) -> pa.Array:
        """The column as plain strings (converted once, when first edited)."""
        self.cols[col] = _text(self.cols[col])
        return self.cols[col]

    def strings(self, col: str) -> list[str]:
        return _text(self.cols[col]).to_pylist()

    def get(self, col: str, rows: np.ndarray) -> np.ndarray:
        taken = self.cols[col].take(pa.array(np.asarray(rows, np.int64)))
        return np.array(_text(taken).to_pylist(), dtype=object)

    def set(self, col: str, rows: np.ndarray, values: Any) -> None:
        """Overwrite the cells of col in rows (distinct row numbers) with values."""
        rows = np.asarray(rows, np.int64)
        if not len(rows):
            return
        new = [str(v) for v in np.asarray(values, dtype=object)]
        if pa.types.is_dictionary(self.cols[col].type):  # edit the codes, grow the vocabulary
            codes, vocab = _parts(self.cols[col], len(self))
            index: dict[str, int] = {}
            for i, v in enumerate(vocab):  # a stacked vocabulary may repeat a value
                index.setdefault(v, i)
            for v in new:
                if v not in index:
                    index[v] = len(vocab)
                    vocab.append(v)
            codes[rows] = [index[v] for v in new]
            self.cols[col] = _indexed(codes, vocab)
            return
        order = np.argsort(rows, kind="stable")
        mask = np.zeros(len(self), bool)
        mask[rows] = True
        replacement = pa.array([new[i] for i in order], pa.string())
        self.cols[col] = pc.replace_with_mask(self.text(col), pa.array(mask), replacement)

    def fill(self, col: str, mask: np.ndarray, value: str) -> None:
        rows = np.flatnonzero(mask)
        self.set(col, rows, np.full(len(rows), value, dtype=object))

    def equals(self, col: str, value: str) -> np.ndarray:
        a = self.cols[col]
        if pa.types.is_dictionary(a.type):
            hits = [i for i, v in enumerate(a.dictionary.to_pylist()) if v == value]
            return np.isin(a.indices.to_numpy(zero_copy_only=False), hits)
        return pc.equal(self.text(col), value).to_numpy(zero_copy_only=False)

    def recode(self, col: str, mask: np.ndarray, mapping: Mapping[str, str]) -> None:
        for old, new in mapping.items():
            self.fill(col, mask & self.equals(col, old), new)


# =======================================================================================
# Buildings
# =======================================================================================
def _villages(rng: Rng, town: np.ndarray, urban: np.ndarray) -> np.ndarray:
    """A village (村) for rural rows, a community (社区) for urban ones."""
    out = np.full(len(town), "", dtype="<U12")
    for t, name in enumerate(_town_tables()[1]):
        rural, city = (town == t) & ~urban, (town == t) & urban
        out[rural] = _choice(rng, [v + "村" for v in VILLAGES[name]], int(rural.sum()))
        seat = "园区" if name in TOWN_SHORT else name[:-1]
        out[city] = _choice(rng, [c + "社区" for c in COMMUNITIES.get(name, [seat])], int(city.sum()))
    return out


def _base(n: int, town: np.ndarray, urban: np.ndarray, rng: Rng, **cols: Any) -> dict[str, Any]:
    """The columns every building base has; cols override the defaults."""
    base = {
        "town": town, "urban": urban, "village": _villages(rng, town, urban),
        "clinic": np.zeros(n, bool), "cap": np.full(n, 120), "org": np.full(n, "", "<U1"),
        "label": np.full(n, "", "<U1"),
    }  # fmt: skip
    base.update(cols)
    base["setting"] = cols.get("setting", np.where(urban, "core", "rural"))
    return base


def _zjj_base(rng: Rng, n: int) -> dict[str, Any]:
    """Housing-bureau rows, by town: homes, offices, shops, factories and the rest."""
    names = _town_tables()[1]
    layout = _town_tables()[2]
    town = _town_draw(rng, n)
    urban = rng.random(n) < layout[town, 3]
    core = np.isin(town, [names.index(t) for t in CORE_TOWNS])
    hilly = np.isin(town, [names.index(t) for t in HILLY_TOWNS])
    setting = np.where(urban, np.where(core, "core", "seat"), np.where(hilly, "hilly", "rural"))
    use = _strings(n, list(USE_SIZE))
    for s, mix in (("core", "core"), ("seat", "seat"), ("rural", "rural"), ("hilly", "rural")):
        m = setting == s
        use[m] = _pick(rng, USE_MIX[mix], int(m.sum()))
    cap = np.where((use == "住宅") & ~urban, 3, 120)
    fp = _lookup(use, {u: v[0] for u, v in USE_SIZE.items()}).astype(float)
    return _base(n, town, urban, rng, setting=setting, use=use, cap=cap, fp=fp,
                 group=np.full(n, "ZJJ"))  # fmt: skip


def _edu_base(rng: Rng, n: int) -> dict[str, Any]:
    """Education-bureau rows: school and kindergarten buildings."""
    names = _town_tables()[1]
    kind = _pick(rng, {k: v[0] for k, v in SCHOOL_KINDS.items()}, n)
    core_idx = np.array([names.index(t) for t in CORE_TOWNS])
    town = np.where(kind == "urban", core_idx[rng.integers(0, 3, n)], _town_draw(rng, n))
    in_village = _in(kind, ("village_primary", "village_kg"))
    base = _base(n, town, ~in_village, rng)
    short = np.array([TOWN_SHORT.get(x, x) for x in names])[town]
    place = np.where(in_village, np.strings.replace(base["village"], "村", ""), short)
    suffix = np.array([SCHOOL_KINDS[k][2] for k in kind])
    urban_name = _cat("利通区第", _choice(rng, ZU[:9], n), _choice(rng, ("小学", "中学"), n))
    use = np.array([SCHOOL_KINDS[k][1] for k in kind])
    label = np.where(use == "学校", _pick(rng, SCHOOL_LABELS, n), _pick(rng, KG_LABELS, n))
    base.update(
        use=use, group=np.full(n, "JYJ"), org=np.where(kind == "urban", urban_name, _cat(place, suffix)),
        label=label, cap=np.array([SCHOOL_KINDS[k][3] for k in kind], int),
        fp=np.array([SCHOOL_KINDS[k][4] for k in kind], float),
    )  # fmt: skip
    return base


def _med_base(rng: Rng, n: int) -> dict[str, Any]:
    """Health-commission rows: hospitals, health centres and village clinics."""
    names = _town_tables()[1]
    kind = _pick(rng, {k: v[0] for k, v in MED_KINDS.items()}, n)
    core_idx = np.array([names.index(t) for t in CORE_TOWNS])
    town = np.where(kind == "community", core_idx[rng.integers(0, 3, n)], _town_draw(rng, n))
    town = np.where(kind == "district", names.index("胜利镇"), town)
    base = _base(n, town, kind != "village", rng)
    village = base["village"]
    short = np.array([TOWN_SHORT.get(x, x) for x in names])[town]
    org = np.select(
        [kind == "district", kind == "community", kind == "town"],
        [_choice(rng, DISTRICT_HOSPITALS, n),
         _cat(np.strings.replace(village, "社区", ""), "社区卫生服务中心"), _cat(short, "卫生院")],
        _cat(np.strings.replace(village, "村", ""), "村卫生室"),
    )  # fmt: skip
    base.update(
        use=np.full(n, "医院"), clinic=kind == "village", group=np.full(n, "WJJ"), org=org,
        label=np.where(kind == "village", "", _pick(rng, HOSPITAL_LABELS, n)),
        cap=np.array([MED_KINDS[k][1] for k in kind], int),
        fp=np.array([MED_KINDS[k][2] for k in kind], float),
    )  # fmt: skip
    return base


def _structure_rows(b: Mapping[str, Any], key: str) -> np.ndarray:
    if key.startswith("住宅:"):
        return (b["use"] == "住宅") & (b["setting"] == key[3:])
    if key == "卫生室":
        return b["clinic"]
    return (b["use"] == key) & ~b["clinic"]


def _structure_and_size(rng: Rng, b: Mapping[str, Any]) -> dict[str, np.ndarray]:
    n = len(b["use"])
    st = _strings(n, list(FLOORS))
    for key, mix in STRUCTURE_MIX.items():
        m = _structure_rows(b, key)
        st[m] = _pick(rng, mix, int(m.sum()))
    core = b["setting"] == "core"
    lo, mode, hi = (
        np.where(core, _lookup(st, {k: v[0][i] for k, v in FLOORS.items()}),
                 _lookup(st, {k: v[1][i] for k, v in FLOORS.items()}))
        for i in range(3)
    )  # fmt: skip
    floors = np.maximum(np.minimum(_tri_int(rng, lo, mode, hi), b["cap"]), 1)
    storey = _lookup(b["use"], {u: v[2] for u, v in USE_SIZE.items()}).astype(float)
    storey = storey + rng.uniform(-0.1, 0.3, n)
    shed = (floors == 1) & _in(b["use"], ("厂房", "仓库"))
    storey = np.where(shed, rng.uniform(6, 9, n), storey)
    height = floors * storey + rng.uniform(0.3, 1.2, n)  # + parapet or roof
    sigma = _lookup(b["use"], {u: v[1] for u, v in USE_SIZE.items()}).astype(float)
    fp = b["fp"] * np.exp(np.clip(rng.normal(0, 1, n), -2, 2) * sigma)
    fp = np.where((b["use"] == "住宅") & b["urban"], fp * 3.2, fp)  # apartment blocks
    area = np.maximum(fp * floors, 12)
    area = np.where(area < 300, np.round(area), np.round(area, 1))
    deep = _in(st, ("剪力墙", "框架-剪力墙")) & core & (rng.random(n) < 0.7)
    below = np.where(deep, rng.integers(1, 3, n), (core & (st == "框架") & (rng.random(n) < 0.3)))
    return {"structure": st, "floors": floors, "height": np.round(height, 1), "area": area,
            "below": below.astype(np.int64)}  # fmt: skip


def _seismic_design(rng: Rng, b: Mapping[str, Any], st: np.ndarray, year: np.ndarray) -> np.ndarray:
    """是/否/不详: engineered and newer buildings designed, rural self-built mostly not."""
    rural = ~b["urban"]
    key_use = _in(b["use"], ("学校", "幼儿园", "医院", "养老机构"))
    eng, brick = _in(st, ENGINEERED), st == "砖混"
    p_yes = np.select(
        [key_use & (year >= 1990), eng & (year >= 2001), eng & (year >= 1990), eng,
         brick & ~rural & (year >= 2001), brick & ~rural & (year >= 1990),
         brick & rural & (year >= 2009), brick & rural & (year >= 2001), st == "轻钢",
         _in(st, TRADITIONAL)],
        [0.97, 0.95, 0.75, 0.3, 0.9, 0.6, 0.45, 0.2, 0.6, 0.02], 0.08,
    )  # fmt: skip
    r = rng.random(len(st))
    return np.where(r < p_yes, "是", np.where(r < p_yes + (1 - p_yes) * 0.8, "否", "不详"))


def _era_and_design(rng: Rng, b: Mapping[str, Any], s: Mapping[str, Any]) -> dict[str, Any]:
    n, st = len(b["use"]), s["structure"]
    lo, mode, hi = (_lookup(st, {k: v[i] for k, v in YEARS.items()}) for i in range(3))
    year = np.minimum(_tri_int(rng, lo, mode, hi), 2023)
    seismic = _seismic_design(rng, b, st, year)
    designed = _pick(rng, _w("8 .85 7 .1 8.5 .03 7.5 .02"), n)
    intensity = np.where(seismic == "是", designed, np.where((seismic == "否") & (rng.random(n) < 0.6), "不设防", ""))
    brick, rural = st == "砖混", ~b["urban"]
    ring_p = np.select(
        [brick & (seismic == "是"), brick & ~rural, brick & (year >= 2009), brick,
         _in(st, ("砖木", "混杂结构"))],
        [0.95, 0.5, 0.55, 0.2, 0.1], 0.02,
    )  # fmt: skip
    ring = np.where(_in(st, MASONRY), _yes(rng.random(n) < ring_p), "")
    slab = np.select(
        [_in(st, ENGINEERED[:4]), brick & (year < 2000), brick,
         _in(st, ("砖木", "土木(生土)", "石木")), st == "混杂结构"],
        ["现浇", np.where(rng.random(n) < 0.7, "预制", "现浇"),
         np.where(rng.random(n) < 0.8, "现浇", "预制"), "木", np.where(rng.random(n) < 0.5, "预制", "木")],
        "其他",
    )  # fmt: skip
    key_use = _in(b["use"], ("学校", "幼儿园", "医院", "养老机构"))
    retro_p = np.where(key_use & (year < 2005), 0.3, np.where(year < 2000, 0.03, 0.005))
    retro = (rng.random(n) < retro_p) & (year <= 2018)
    retro_year = np.minimum(np.maximum(year + 5, 2009) + rng.integers(0, 8, n), 2022)
    return {"year": year, "seismic": seismic, "intensity": intensity, "ring": ring, "slab": slab,
            "retro": retro, "retro_year": _masked(retro_year, ~retro)}  # fmt: skip


def _appraisal(rng: Rng, b: Mapping[str, Any], st: np.ndarray, damage: np.ndarray) -> np.ndarray:
    n = len(st)
    key_use = _in(b["use"], ("学校", "幼儿园", "医院"))
    grade = np.select(
        [damage, key_use, _in(st, TRADITIONAL)],
        [_pick(rng, _w("未鉴定 .35 B .2 C .3 D .15"), n), _pick(rng, _w("A .45 B .4 未鉴定 .13 C .02"), n),
         _pick(rng, _w("未鉴定 .85 B .1 C .05"), n)],
        _pick(rng, _w("未鉴定 .78 A .12 B .09 C .01"), n),
    )  # fmt: skip
    return np.where(rng.random(n) < 0.05, "", grade)


def _self_built(rng: Rng, b: Mapping[str, Any], st: np.ndarray, damage: np.ndarray) -> np.ndarray:
    """自建房安全排查结论 (国办发明电〔2022〕10号) for self-built houses and shops: village houses and
    non-engineered town houses and shops; damaged and traditional houses are found wanting more often."""
    n = len(st)
    self_built = (
        (b["group"] == "ZJJ") & _in(b["use"], ("住宅", "商业", "其他")) & (~b["urban"] | _in(st, MASONRY + TRADITIONAL))
    )
    finding = np.select(
        [damage, _in(st, TRADITIONAL)],
        [_pick(rng, SELF_BUILT_MIX["damaged"], n), _pick(rng, SELF_BUILT_MIX["traditional"], n)],
        _pick(rng, SELF_BUILT_MIX["other"], n),
    )
    return np.where(self_built & (rng.random(n) < 0.95), finding, "")


def _condition(rng: Rng, b: Mapping[str, Any], s: Mapping[str, Any], year: np.ndarray) -> dict:
    n, st, floors = len(b["use"]), s["structure"], s["floors"]
    damage = rng.random(n) < _lookup(st, DAMAGE_RATE, 0.008).astype(float) + (year < 1980) * 0.03
    measured = np.where(damage, rng.random(n) < 0.4, rng.random(n) < 0.1)
    tilt = np.round(np.where(damage, rng.uniform(3, 15, n), rng.uniform(0, 2, n)), 1)
    vert = np.where(
        st == "底部框架-抗震墙",
        _pick(rng, _w("无 .6 中等 .3 严重 .1"), n),
        _pick(rng, _w("无 .9 中等 .07 严重 .03"), n),
    )
    hilly = b["setting"] == "hilly"
    site = np.where(
        hilly,
        _pick(rng, _w("I1 .15 II .55 III .05 不详 .25"), n),
        _pick(rng, _w("II .5 III .25 I1 .04 IV .01 不详 .2"), n),
    )
    old_masonry = _in(st, MASONRY) & (year < 2000) & (floors >= 2)
    fall_p = np.where(old_masonry, 0.12, np.where(_in(st, TRADITIONAL), 0.06, 0.03))
    high = (s["height"] > np.where(b["use"] == "住宅", 27, 24)) | (floors >= 10)
    return {
        "damage": _yes(damage), "tilt": _masked(tilt, ~measured),
        "grade": _appraisal(rng, b, st, damage), "vert": np.where(floors == 1, "无", vert),
        "plan": _yes(rng.random(n) < np.where(floors == 1, 0.03, 0.07)), "site": site,
        "fall": _yes(rng.random(n) < fall_p), "fire": np.where(high, _yes(rng.random(n) < 0.85), ""),
        "geo": _yes(rng.random(n) < np.where(hilly, 0.12, 0.01)),
        "altered": _yes(rng.random(n) < np.where(b["use"] == "商业", 0.12, 0.05)),
        "self_built": _self_built(rng, b, st, damage),
    }  # fmt: skip


def _occupants(rng: Rng, b: Mapping[str, Any], area: np.ndarray) -> pa.Array:
    n, use, urban = len(b["use"]), b["use"], b["urban"]
    per = _lookup(use, {u: v[3] for u, v in USE_SIZE.items()}).astype(float)
    people = area / np.where(per > 0, per, 1) * rng.uniform(0.6, 1.1, n)
    family = rng.choice(np.arange(1, 8), n, p=[0.12, 0.22, 0.2, 0.2, 0.14, 0.08, 0.04])
    people = np.where((use == "住宅") & ~urban, family, people)
    people = np.where((use == "住宅") & urban, area / 35 * rng.uniform(0.6, 1, n), people)
    return _masked(np.round(people).astype(np.int64), (use != "住宅") & (rng.random(n) < 0.05))


def _labels(rng: Rng, b: Mapping[str, Any]) -> dict[str, pa.Array]:
    """Name, owner and address of every building.

    Names and owners are composed on small vocabularies (`_combo`, `_choose`), addresses with
    Arrow joins: a million rows in about a second."""
    n, use, urban, org, village = len(b["use"]), b["use"], b["urban"], b["org"], b["village"]
    town = _indexed(b["town"], _town_tables()[1])
    root = _vmap(village, lambda v: v.removesuffix("村").removesuffix("社区"))
    committee = _vmap(village, lambda v: v + ("村民委员会" if v.endswith("村") else "居民委员会"))
    person = _combo(_draw(rng, SURNAMES, n), _draw(rng, GIVEN_NAMES, n))
    company = _combo("宁夏", _draw(rng, COMPANY_ROOTS, n), _draw(rng, INDUSTRIES, n), "有限公司")
    estate = _combo(_draw(rng, ESTATES, n), "小区")
    trader = _combo(_draw(rng, COMPANY_ROOTS, n), "商贸有限公司")
    works = _in(use, ("厂房", "仓库"))
    owner = _choose(
        [org != "", (use == "住宅") & urban, use == "住宅", (use == "办公") & urban,
         (use == "商业") & (rng.random(n) < 0.5), use == "商业", works, use == "养老机构", use == "宗教"],
        [org, _combo(estate, "业主委员会"), person, _combo("利通区", _draw(rng, OFFICES, n), "服务中心"),
         person, trader, company, _combo(town, "敬老院"), _combo(root, "清真寺管理委员会")],
        committee,
    )  # fmt: skip
    number = _draw(rng, [str(i) for i in range(1, 30)], n)
    plant = _combo(company, _draw(rng, "1 2 3 4 5".split(), n), "号", np.where(use == "厂房", "厂房", "仓库"))
    facility = _draw(rng, ("泵房", "公厕", "文化活动室", "变电室"), n)
    name = _choose(
        [org != "", (use == "住宅") & urban, (use == "住宅") & (rng.random(n) < 0.1), use == "住宅",
         works, use == "宗教", use == "商业", use == "养老机构", use == "其他"],
        [_combo(org, b["label"]), _combo(estate, number, "号楼"), _combo(person, "住宅"), "", plant,
         _combo(root, "清真寺"), _combo(owner, "门店"), _combo(owner, "住养楼"), _combo(root, facility)],
        _combo(owner, "办公楼"),
    )  # fmt: skip
    rural = _join(town, village, _draw(rng, ZU, n), "组", rng.integers(1, 160, n), "号")
    city = _join(town, village, _draw(rng, STREETS, n), rng.integers(1, 400, n), "号")
    return {"name": name, "owner": owner, "address": _if(urban, city, rural)}


def _responsible(b: Mapping[str, Any]) -> np.ndarray:
    """Town government for rural houses, ZJJ for urban, JYJ/WJJ for their own, GXJ for works."""
    town_unit = np.array(["T" + c[6:] for c in _town_tables()[0]])[b["town"]]
    use, urban = b["use"], b["urban"]
    return np.select(
        [b["group"] == "JYJ", b["group"] == "WJJ", _in(use, ("厂房", "仓库")),
         (use == "商业") & urban, _in(use, ("住宅", "办公")) & urban],
        ["JYJ", "WJJ", "GXJ", "GXJ", "ZJJ"], town_unit,
    )  # fmt: skip


def _survey(rng: Rng, b: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Survey day and surveyor: each town's team (and each department's) has its window."""
    n = len(b["use"])
    team_of = np.where(b["group"] == "ZJJ", b["town"], np.where(b["group"] == "JYJ", -1, -2))
    days, who = np.zeros(n, np.int64), np.full(n, "", dtype="<U4")
    for team_id in np.unique(team_of):
        m = team_of == team_id
        days[m] = _campaign_days(rng, int(m.sum()), int(rng.integers(0, 100)), int(rng.integers(45, 110)))
        team = _team(rng, 5 if team_id >= 0 else 3)
        who[m] = team[rng.integers(0, len(team), int(m.sum()))]
    return days, who


def _town_sequence(rng: Rng, town: np.ndarray) -> np.ndarray:
    """1, 2, … within each town, in a random order (the 6 digits of the building code)."""
    order = np.lexsort((rng.random(len(town)), town))
    starts = np.r_[0, np.flatnonzero(np.diff(town[order])) + 1]
    ranks = np.arange(len(town)) - np.repeat(starts, np.diff(np.r_[starts, len(town)]))
    seq = np.empty(len(town), np.int64)
    seq[order] = ranks + 1
    return seq


def _buildings_base(rng: Rng, n: int) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """All rows' bases, in file order (file, then village), with their sequence numbers."""
    n_edu, n_med = round(n * EDU_SHARE), round(n * MED_SHARE)
    parts = [_zjj_base(rng, n - n_edu - n_med), _edu_base(rng, n_edu), _med_base(rng, n_med)]
    b = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    seq = _town_sequence(rng, b["town"])
    files = np.array(["ZJJ:" + name for name in _town_tables()[1]])[b["town"]]
    group = np.where(b["group"] == "ZJJ", files, b["group"])
    order = np.lexsort((seq, b["town"], _codes(b["village"])[0], _codes(group)[0]))
    return {k: v[order] for k, v in b.items()}, seq[order], group[order]


def _buildings_frame(rng: Rng, n: int) -> Frame:
    b, seq, group = _buildings_base(rng, n)
    codes, names, layout = _town_tables()
    s = _structure_and_size(rng, b)
    e = _era_and_design(rng, b, s)
    c = _condition(rng, b, s, e["year"])
    sigma = np.where(b["urban"], 0.008, np.where(b["setting"] == "hilly", 0.035, 0.022))
    lon, lat = _scatter(rng, layout[b["town"], :2], sigma)
    days, surveyor = _survey(rng, b)
    lab = _labels(rng, b)
    town_code = _indexed(b["town"], codes)
    columns = {
        "building_id": _join("JZ-", town_code, "-", pc.utf8_lpad(_text(seq), width=6, padding="0")),
        "name": lab["name"], "town_code": town_code, "town_name": _indexed(b["town"], names),
        "village": b["village"], "address": lab["address"], "lon": lon, "lat": lat,
        "urban_rural": np.where(b["urban"], "城镇", "农村"), "use": b["use"],
        "structure_type": s["structure"], "floors_above": s["floors"], "floors_below": s["below"],
        "height_m": _masked(s["height"], rng.random(n) < 0.15), "floor_area_m2": s["area"],
        "year_built": e["year"], "seismic_design": e["seismic"], "design_intensity": e["intensity"],
        "ring_beam_tie_column": e["ring"], "slab_type": e["slab"], "retrofitted": _yes(e["retro"]),
        "retrofit_year": e["retro_year"], "altered": c["altered"], "visible_damage": c["damage"],
        "tilt_permille": c["tilt"], "appraisal_grade": c["grade"], "self_built_finding": c["self_built"],
        "vertical_irregularity": c["vert"],
        "plan_irregularity": c["plan"], "site_class": c["site"], "falling_hazard": c["fall"],
        "fire_facilities_ok": c["fire"], "geo_hazard_nearby": c["geo"],
        "occupants": _occupants(rng, b, s["area"]), "owner": lab["owner"],
        "responsible_unit": _responsible(b), "survey_date": _indexed(days, DATE_VOCAB),
        "surveyor": surveyor,
        "remark": np.where(rng.random(n) < 0.04, _choice(rng, REMARKS, n), ""),
    }  # fmt: skip
    return Frame.build(columns, group, n)


def _building_specs() -> dict[str, FileSpec]:
    specs: dict[str, FileSpec] = {}
    for town in TOWN_LAYOUT:
        gbk, plain = town in GBK_TOWNS, town in PLAIN_UTF8_TOWNS
        specs[f"ZJJ:{town}"] = FileSpec(
            "ZJJ", f"房屋建筑调查_{town}",
            encoding="gbk" if gbk else "utf-8" if plain else "utf-8-sig",
            newline="\n" if plain else "\r\n", header_variant=town in VARIANT_HEADER_TOWNS,
            drop=("town_name",) if town in NO_TOWN_NAME_TOWNS else (),
            styles=TOWN_STYLES.get(town, ()), remarks=town in REMARK_TOWNS,
        )  # fmt: skip
    specs["JYJ"] = FileSpec("JYJ", "学校校舍调查", xlsx=True, header_variant=True)
    specs["WJJ"] = FileSpec("WJJ", "医疗卫生机构房屋调查", mapping=WJJ_MAPPING, drop=("town_name",),
                            styles=("date_slash", "yn_bool"))  # fmt: skip
    return specs


# =======================================================================================
# Bridges
# =======================================================================================
def _bridge_geometry(rng: Rng, n: int) -> dict[str, np.ndarray]:
    size = _pick(rng, {k: v[0] for k, v in BRIDGE_SIZES.items()}, n)
    lo = np.array([BRIDGE_SIZES[s][1] for s in size])
    spans = _tri_int(rng, lo, lo, np.array([BRIDGE_SIZES[s][2] for s in size]))
    max_span = np.array([rng.choice(BRIDGE_SIZES[s][3]) for s in size], float)
    arch = (rng.random(n) < 0.12) & (size != "large")
    spans = np.where(arch, np.minimum(spans, 3), spans)
    if n >= 50:  # the Yellow River bridge
        size[0], spans[0], max_span[0], arch[0] = "large", 25, 50, False
    total = spans * max_span + 2 * rng.uniform(1.5, 5, n)  # spans plus abutments
    return {"size": size, "spans": spans, "max_span": max_span, "total": np.round(total, 1),
            "arch": arch}  # fmt: skip


def _bridge_condition(rng: Rng, year: np.ndarray) -> np.ndarray:
    """Technical condition class: mostly 1–3, older worse, one or two class 5."""
    n = len(year)
    cls = np.select(
        [year < 1990, year < 2006],
        [_pick(rng, _w("1 .05 2 .35 3 .45 4 .15"), n), _pick(rng, _w("1 .2 2 .5 3 .25 4 .05"), n)],
        _pick(rng, _w("1 .5 2 .42 3 .08"), n),
    )  # fmt: skip
    n5 = 2 if n >= 100 else 1 if n >= 20 else 0
    oldest = np.argsort(year, kind="stable")[: max(n // 4, n5)]
    cls[rng.choice(oldest, n5, replace=False)] = "5"
    return cls


def _bridge_names(rng: Rng, town: np.ndarray, crossing: np.ndarray, route: np.ndarray,
                  size: np.ndarray) -> np.ndarray:  # fmt: skip
    names = _town_tables()[1]
    n = len(town)
    village = np.array([rng.choice(VILLAGES[names[t]]) for t in town])
    suffix = np.array([BRIDGE_SIZES[s][4] for s in size])
    return np.select(
        [crossing == "河流", crossing == "沟谷", crossing == "道路", crossing == "铁路"],
        [_cat(village, _choice(rng, WATERWAYS, n), suffix), _cat(village, "沟", suffix),
         _cat(village, route, "跨线桥"), _cat(village, "跨铁路立交桥")],
        _cat(village, suffix),
    )  # fmt: skip


def _bridges_frame(rng: Rng, n: int) -> Frame:
    codes, names, layout = _town_tables()
    town = _town_draw(rng, n)
    g = _bridge_geometry(rng, n)
    rclass = _pick(rng, {k: v[0] for k, v in ROUTE_CLASSES.items()}, n)
    crossing = _pick(rng, CROSSINGS, n)
    year = np.minimum(_tri_int(rng, np.full(n, 1965), np.full(n, 2005), np.full(n, 2023)), 2023)
    if n >= 50:  # the Yellow River bridge: national road, 2004, continuous girders
        town[0], rclass[0], crossing[0], year[0] = names.index("金积镇"), "national", "河流", 2004
    route = np.array([rng.choice(ROUTE_CLASSES[c][1]) for c in rclass])
    name = _bridge_names(rng, town, crossing, route, g["size"])
    multi = (g["spans"] > 1) & (g["max_span"] >= 13)
    continuity = np.where(g["arch"], "", np.where(multi & (rng.random(n) < 0.4), "连续", "简支"))
    lifeline = rng.random(n) < np.array([ROUTE_CLASSES[c][3] for c in rclass])
    large_type = np.where(np.arange(n) > 0, _pick(rng, _w("梁式桥 .8 刚构桥 .2"), n), "梁式桥")
    if n >= 50:
        name[0], continuity[0], lifeline[0] = "利通黄河大桥", "连续", True
    stake_km, stake_m = rng.integers(0, 120, n), rng.integers(0, 1000, n)
    has_stake = np.array([ROUTE_CLASSES[c][5] for c in rclass])
    aadt = [rng.integers(*ROUTE_CLASSES[c][2]) for c in rclass]
    days = _campaign_days(rng, n, 30, 120)
    back = (rng.uniform(0, 1, n) * (days + 770)).astype(np.int64)
    inspected = SURVEY_FIRST - np.timedelta64(800, "D") + back.astype("timedelta64[D]")
    lon, lat = _scatter(rng, layout[town, :2], 0.025)
    team = _team(rng, 3)
    old = year < 1990
    columns = {
        "bridge_id": _cat("QL-", np.array(codes)[town], "-", np.strings.zfill((np.arange(n) + 1).astype(str), 3)),
        "name": name, "route": route,
        "stake": np.where(has_stake, _cat("K", stake_km, "+", np.strings.zfill(stake_m.astype(str), 3)), ""),
        "town_code": np.array(codes)[town], "town_name": np.array(names)[town], "lon": lon, "lat": lat,
        "structure_type": np.where(g["arch"], "拱桥", np.where(g["size"] == "large", large_type, "梁式桥")),
        "continuity": continuity, "span_count": g["spans"], "max_span_m": g["max_span"],
        "total_length_m": g["total"],
        "pier_type": np.where(g["spans"] == 1, "无", np.where(
            g["arch"], "实体墩", _pick(rng, _w("双柱(多柱)墩 .6 单柱墩 .15 实体墩 .25"), n))),
        "bearing_type": np.where(g["arch"], "无", np.where(
            g["size"] == "large", _pick(rng, _w("盆式 .6 板式橡胶 .4"), n),
            _pick(rng, _w("板式橡胶 .9 钢支座 .1"), n))),
        "year_built": year,
        "design_intensity": np.select(
            [year >= 2000, year >= 1990],
            [_pick(rng, _w("8 .8 7 .15 不详 .05"), n), _pick(rng, _w("7 .4 8 .3 不详 .2 不设防 .1"), n)],
            _pick(rng, _w("不设防 .5 不详 .4 7 .1"), n)),
        "anti_fall_measures": _yes(rng.random(n) < np.where(year >= 2008, 0.8, 0.3)),
        "seat_width_ok": np.where(old, _pick(rng, _w("是 .5 否 .25 不详 .25"), n),
                                  _pick(rng, _w("是 .75 否 .08 不详 .17"), n)),
        "condition_class": _bridge_condition(rng, year),
        "last_inspection": np.where(rng.random(n) < 0.15, "", np.datetime_as_string(inspected, unit="D")),
        "scour": _yes((crossing == "河流") & (rng.random(n) < 0.08)),
        "liquefiable_site": np.where(crossing == "河流", _pick(rng, _w("是 .15 否 .5 不详 .35"), n),
                                     _pick(rng, _w("否 .7 不详 .3"), n)),
        "skew_deg": np.where(rng.random(n) < 0.75, 0, np.round(rng.uniform(5, 40, n))).astype(int),
        "aadt": np.array(aadt, np.int64), "lifeline_route": _yes(lifeline), "crossing": crossing,
        "owner_unit": np.array([ROUTE_CLASSES[c][4] for c in rclass]), "responsible_unit": "ZJJ",
        "survey_date": DATE_VOCAB[days], "surveyor": team[rng.integers(0, len(team), n)],
    }  # fmt: skip
    return Frame.build(columns, "ZJJ", n)


# =======================================================================================
# Hazardous-chemical sites and their inventory
# =======================================================================================
def _credit_codes(rng: Rng, n: int) -> list[str]:
    """Unified social credit codes of Wuzhong enterprises, with a valid GB 32100 check digit."""
    out: list[str] = []
    while len(out) < n:
        area = "640302" if rng.random() < 0.75 else "640300"
        code = "91" + area + "MA7" + "".join(rng.choice(list(CHARSET), 6))
        code += check_char(code)
        if code not in out:
            out.append(code)
    return out


Stock = list[tuple[str, float, str]]  # (chemical, max quantity t, unit name)


def _stock(rng: Rng, arch: Archetype) -> Stock:
    """2–6 chemicals: the archetype's sure ones plus a random few."""
    chosen = [s for s in arch.stock if s[3] >= 1 or rng.random() < s[3]]
    for s in sorted(arch.stock, key=lambda s: -s[3]):
        if len(chosen) < 2 and s not in chosen:
            chosen.append(s)
    out = []
    for chem, lo, hi, _, unit in chosen[:6]:
        q = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        out.append((chem, round(q, 2 if q < 10 else 1), unit))
    return out


def _alpha(population: int) -> float:
    """GB 18218 α by people within 500 m outside the boundary."""
    for threshold, alpha in ((100, 2.0), (50, 1.5), (30, 1.2), (1, 1.0)):
        if population >= threshold:
            return alpha
    return 0.5


def _unit_scores(stock: Stock, alpha: float) -> dict[str, tuple[float, float]]:
    """unit → (S = Σ q/Q, R = α Σ β q/Q)."""
    scores: dict[str, tuple[float, float]] = {}
    for chem, q, unit in stock:
        c = CHEMICALS[chem]
        s, r = scores.get(unit, (0.0, 0.0))
        scores[unit] = (s + q / c.q, r + alpha * c.beta * q / c.q)
    return scores


def _grade_of(s: float, r: float) -> str:
    return "非重大危险源" if s < 1 else next(g for t, g in GRADES if r >= t)


def _grade(stock: Stock, alpha: float) -> str:
    """The site's grade: its worst major-hazard unit (GB 18218 grades per unit)."""
    majors = [r for s, r in _unit_scores(stock, alpha).values() if s >= 1]
    return _grade_of(1, max(majors)) if majors else "非重大危险源"


def _ambiguous(stock: Stock, alpha: float) -> bool:
    """Near a threshold, or the site total would grade differently from its worst unit."""
    units = _unit_scores(stock, alpha).values()
    near = any(0.8 <= s < 1.25 or (s >= 1 and any(0.8 * t <= r < 1.25 * t for t in (10, 50, 100))) for s, r in units)
    total = _grade_of(sum(s for s, _ in units), sum(r for _, r in units))
    return near or total != _grade(stock, alpha)


def _settle(stock: Stock, alpha: float) -> Stock:
    """Nudge quantities away from thresholds, so the computed grade is unambiguous."""
    for _ in range(12):
        if not _ambiguous(stock, alpha):
            break
        scores = _unit_scores(stock, alpha)
        worst = max(scores, key=lambda u: scores[u][0])
        factor = 1.3 if scores[worst][0] >= 1.1 else 0.65
        stock = [(c, round(q * (factor if u == worst else 0.6), 2), u) for c, q, u in stock]
    return stock


def _phone(rng: Rng) -> str:
    if rng.random() < 0.5:
        return f"0953-{rng.integers(2000000, 8000000)}"
    return f"1{rng.choice(['39', '35', '89', '51', '52'])}{rng.integers(10000000, 99999999)}"


def _site_row(rng: Rng, arch: Archetype, site_id: str, root: str, town: str) -> dict[str, Any]:
    codes, names, _ = _town_tables()
    park = INDUSTRIAL_PARKS[town] if arch.in_park else None
    centre = np.array([park[:2] if park else TOWN_LAYOUT[town][:2]])
    lon, lat = _scatter(rng, centre, 0.006 if park else 0.02)
    population = int(rng.integers(0, 120) if park else rng.integers(80, 2500))
    alpha = _alpha(population)
    stock = _settle(_stock(rng, arch), alpha)
    road = f"{rng.choice(['经', '纬'])}{rng.choice(ZU[:6])}路" if park else str(rng.choice(STREETS))
    place = park[2] if park else f"{rng.choice(VILLAGES[town])}村"
    tanks = not all(u.endswith("库房") for _, _, u in stock)
    flags = {k: "是" if rng.random() < p else "否" for k, p in SITE_FLAGS.items()}
    return {
        "site_id": site_id, "town_code": codes[names.index(town)], "town_name": town,
        "name": str(rng.choice(arch.names)).format(root=root, town=TOWN_SHORT.get(town, town)),
        "lon": _num1(lon[0], 6), "lat": _num1(lat[0], 6),
        "address": f"{town}{place}{road}{rng.integers(1, 300)}号", "site_kind": arch.site_kind,
        "population_500m": str(population),
        "nearest_sensitive_m": str(rng.integers(30, 450) if population >= 100 else rng.integers(300, 3000)),
        "year_built": str(rng.integers(1995, 2023)),
        "building_grade": str(rng.choice(["未鉴定", "A", "B", "C", "D"], p=[0.45, 0.2, 0.28, 0.06, 0.01])),
        **flags, "tanks_anchored": flags["tanks_anchored"] if tanks else "无储罐",
        "declared_grade": _grade(stock, alpha),
        "contact": str(_names(rng, 1)[0]), "phone": _phone(rng), "responsible_unit": "YJJ",
        "_stock": stock,
    }  # fmt: skip


def _under_declare(rng: Rng, rows: list[dict[str, Any]]) -> int:
    """A few major hazard sources declare a lower grade than the computed one."""
    majors = [i for i, r in enumerate(rows) if r["declared_grade"] != "非重大危险源"]
    for i, r in enumerate(rows):
        if i not in majors and rng.random() < 0.2:
            r["declared_grade"] = ""  # optional: a few small sites leave it blank
    k = max(1, round(len(majors) / 4)) if len(majors) >= 2 else 0
    order = ("非重大危险源", "四级", "三级", "二级", "一级")
    for j, i in enumerate(rng.permutation(majors)[:k]):
        grade = rows[i]["declared_grade"]
        rows[i]["declared_grade"] = "非重大危险源" if j == 0 else order[order.index(grade) - 1]
    return k


def _site_rows(rng: Rng, n: int) -> list[dict[str, Any]]:
    counts = _largest_remainder(n, {k: a.weight for k, a in SITE_ARCHETYPES.items()})
    kinds = rng.permutation([k for k, c in counts.items() for _ in range(c)])
    ids = _credit_codes(rng, n)
    roots = [COMPANY_ROOTS[i % len(COMPANY_ROOTS)] + ("" if i < len(COMPANY_ROOTS) else str(i))
             for i in rng.permutation(max(n, len(COMPANY_ROOTS)))]  # fmt: skip
    names = _town_tables()[1]
    rows = []
    for i, kind in enumerate(kinds):
        arch = SITE_ARCHETYPES[kind]
        town = (rng.choice(list(INDUSTRIAL_PARKS)) if arch.in_park
                else rng.choice(CORE_TOWNS) if kind == "gas" else rng.choice(names))  # fmt: skip
        rows.append(_site_row(rng, arch, ids[i], roots[i], str(town)))
    return rows


def _sites_frame(rng: Rng, n: int) -> tuple[Frame, list[Stock], dict[str, int]]:
    rows = _site_rows(rng, n)
    majors = sum(r["declared_grade"] != "非重大危险源" for r in rows)
    planted = {"major_hazard_sites": majors, "under_declared_sites": _under_declare(rng, rows)}
    team = _team(rng, 2)
    for r, day in zip(rows, _campaign_days(rng, n, 40, 90), strict=True):
        r.update(survey_date=DATE_VOCAB[day], surveyor=str(rng.choice(team)))
    frame = Frame.from_rows(rows, load_template("hazchem_sites").keys, "YJJ")
    return frame, [r["_stock"] for r in rows], planted


def _inventory_frame(rng: Rng, site_ids: Sequence[str], stocks: Sequence[Stock]) -> Frame:
    rows = []
    for site_id, stock in zip(site_ids, stocks, strict=True):
        for chem, q, unit in stock:
            c = CHEMICALS[chem]
            blank_cat = chem in NAMED_TOXIC and rng.random() < 0.5
            rows.append({
                "site_id": site_id, "unit_name": unit,
                "unit_kind": "储存单元" if unit.endswith(STORAGE_UNIT_SUFFIXES) else "生产单元",
                "chemical": chem, "cas": "/" if c.mixture and rng.random() < 0.4 else c.cas,
                "category": "" if blank_cat else c.category, "max_quantity_t": _num1(q),
                "critical_quantity_t": _num1(c.q) if blank_cat or rng.random() < 0.5 else "",
            })  # fmt: skip
    return Frame.from_rows(rows, load_template("hazchem_inventory").keys, "YJJ")


# =======================================================================================
# Pipelines
# =======================================================================================
def _along(path: tuple[tuple[float, float], ...], f: float) -> tuple[float, float]:
    """The point at fraction f of a polyline's length."""
    pts = np.array(path)
    seg = np.hypot(*(np.diff(pts, axis=0) * [88.0, 111.0]).T)  # km at 38° N
    d = f * seg.sum()
    i = min(int(np.searchsorted(np.cumsum(seg), d)), len(seg) - 1)
    t = (d - np.r_[0, np.cumsum(seg)][i]) / seg[i]
    p = pts[i] + t * (pts[i + 1] - pts[i])
    return float(p[0]), float(p[1])


def _towns_along(line: PipelineLine, f0: float, f1: float) -> str:
    codes, names, layout = _town_tables()
    seen: list[int] = []
    for f in np.linspace(f0, f1, 5):
        lon, lat = _along(line.path, float(f))
        t = int(np.argmin(np.hypot((layout[:, 0] - lon) * 88, (layout[:, 1] - lat) * 111)))
        seen += [] if t in seen else [t]
    return "、".join(names[t] for t in seen) if line.town_names else ";".join(codes[t] for t in seen)


def _hca(rng: Rng, medium: str, loc: str) -> str:
    """High-consequence area: for gas lines by location class (GB 32167), oil at random."""
    if medium == "天然气":
        return {"4": "III", "3": "II", "2": str(rng.choice(["I", "无"]))}.get(loc, "无")
    return str(rng.choice(["无", "I", "II", "III"], p=[0.5, 0.2, 0.2, 0.1]))


def _segment(rng: Rng, line: PipelineLine, j: int, k: int) -> dict[str, str]:
    f0, f1 = j / k, (j + 1) / k
    (x0, y0), (x1, y1) = _along(line.path, f0), _along(line.path, f1)
    km = np.hypot((x1 - x0) * 88, (y1 - y0) * 111) * rng.uniform(1.03, 1.12)
    loc = str(rng.choice(["1", "2", "3", "4"], p=[0.35, 0.35, 0.2, 0.1]))
    ili = f"{rng.integers(2018, 2023)}-{rng.integers(3, 11):02d}-{rng.integers(1, 28):02d}"
    return {
        "segment_id": f"{line.prefix}-{j + 1:03d}", "pipeline_name": line.name,
        "operator": line.operator, "medium": line.medium, "material": line.material,
        "steel_grade": line.steel_grade, "joint_type": "焊接", "diameter_mm": _num1(line.diameter_mm),
        "wall_mm": _num1(line.wall_mm), "design_pressure_mpa": _num1(line.pressure_mpa),
        "year_built": str(line.year), "length_km": _num1(km), "start_lon": f"{x0:.5f}",
        "start_lat": f"{y0:.5f}", "end_lon": f"{x1:.5f}", "end_lat": f"{y1:.5f}",
        "town_codes": _towns_along(line, f0, f1), "location_class": loc,
        "hca_grade": _hca(rng, line.medium, loc), "fault_crossing": "否", "fault_offset_m": "",
        "fault_seismic_design": "",
        "ground_failure": "是" if rng.random() < 0.35 else "否",
        "max_metal_loss_pct": _num1(rng.uniform(2, 32), 1), "last_ili": ili,
        "cathodic_ok": "是" if rng.random() < 0.85 else "否",
        "leak_detection": "是" if rng.random() < 0.75 else "否", "responsible_unit": "FGJ",
    }  # fmt: skip


# The planted active-fault crossings, in planting order: (offset in metres, designed or verified to
# GB/T 50470-2017). The trunk gas line (2011) was verified against the 2017 code; the oil line (built before
# it) was never verified; the gas branch's operator finds no design or verification records (nor an offset).
FAULT_CROSSINGS = (("3.2", "是"), ("1.8", "否"), ("", "不详"))


def _plant_pipeline_hazards(rng: Rng, rows: list[dict[str, str]]) -> dict[str, int]:
    """Up to three fault crossings (the first a gas line in an HCA III; designed or verified to GB/T 50470-2017,
    not, and unknown), corrosion, stale inspections."""
    n = len(rows)
    gas = [i for i, r in enumerate(rows) if r["medium"] == "天然气"]
    oil = [i for i, r in enumerate(rows) if r["medium"] != "天然气"]
    branch = [i for i in gas if rows[i]["pipeline_name"] != rows[gas[len(gas) // 2]]["pipeline_name"]]
    faults = ([gas[len(gas) // 2]] if gas else []) + ([oil[len(oil) // 2]] if oil and n >= 6 else [])
    faults += [branch[len(branch) // 2]] if branch and n >= 9 else []
    for i, (offset, designed) in zip(faults, FAULT_CROSSINGS, strict=False):
        rows[i].update(fault_crossing="是", fault_offset_m=offset, fault_seismic_design=designed)
    if faults and gas:
        rows[faults[0]].update(hca_grade="III", location_class="4")
    crude = [i for i, r in enumerate(rows) if r["medium"] == "原油"] or list(range(n))
    corroded = crude[: 2 if n >= 10 else 1] if n >= 3 else []
    for i in corroded:
        rows[i]["max_metal_loss_pct"] = _num1(rng.uniform(41, 56), 1)
    stale = [i for i in range(n) if i not in corroded and i not in faults][-3:] if n >= 5 else []
    for i, when in zip(stale, ("2012-06-18", "2014-09-03", ""), strict=False):
        rows[i].update(last_ili=when, max_metal_loss_pct=rows[i]["max_metal_loss_pct"] if when else "")
    designed = [rows[i]["fault_seismic_design"] for i in faults]
    return {"fault_crossings": len(faults), "fault_crossings_not_verified": designed.count("否"),
            "fault_crossings_design_unknown": designed.count("不详"), "metal_loss_ge_40": len(corroded),
            "stale_or_no_ili": len(stale)}  # fmt: skip


def _pipelines_frame(rng: Rng, n: int) -> tuple[Frame, dict[str, int]]:
    weights = {line.name: 1.5 if i == 0 else 1.0 for i, line in enumerate(PIPELINE_LINES)}
    counts = _largest_remainder(n, weights)
    rows = [_segment(rng, line, j, counts[line.name]) for line in PIPELINE_LINES
            for j in range(counts[line.name])]  # fmt: skip
    planted = _plant_pipeline_hazards(rng, rows)
    team = _team(rng, 2)
    for r, day in zip(rows, _campaign_days(rng, n, 60, 60), strict=True):
        r.update(survey_date=DATE_VOCAB[day], surveyor=str(rng.choice(team)))
    return Frame.from_rows(rows, load_template("pipelines").keys, "FGJ"), planted


# =======================================================================================
# Value spellings: what clerks type and Excel saves
# =======================================================================================
FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
THOUSANDS_COLUMNS = ("floor_area_m2", "total_length_m", "max_quantity_t")
FULLWIDTH_COLUMNS = ("floors_above", "floor_area_m2", "year_built", "occupants", "span_count")
YOUWU_COLUMNS = ("visible_damage", "ring_beam_tie_column", "falling_hazard", "geo_hazard_nearby",
                 "anti_fall_measures", "scour")  # fmt: skip
STYLE_ORDER = ("thousands", "fullwidth", "year_suffix", "year_month", "yn_bool", "youwu_bool",
               "date_slash", "date_cn", "slash_unknown", "buxiang_unknown", "short_enum")  # fmt: skip


def _keys(tpl: Template, frame: Frame, pred: Callable[[Any], bool]) -> list[str]:
    return [f.key for f in tpl.fields if pred(f) and f.key in frame]


def _rewrite(frame: Frame, cols: Sequence[str], mask: np.ndarray, fn: Callable[[pd.Series], Any]) -> None:
    """Rewrite the non-blank cells of cols in the masked rows with fn (on a Series)."""
    rows = np.flatnonzero(mask)
    for col in (c for c in cols if c in frame):
        vals = frame.get(col, rows)
        keep = vals != ""
        if keep.any():
            new = fn(pd.Series(vals[keep], dtype=object))
            frame.set(col, rows[keep], np.asarray(new, dtype=object))


def _thousands(s: pd.Series) -> pd.Series:
    x = pd.to_numeric(s, errors="coerce")
    big = (x >= 1000).to_numpy()
    out = s.copy()
    out[big] = [f"{v:,.1f}".removesuffix(".0") for v in x[big]]
    return out


def _date_format(year_sep: str, month_sep: str, end: str) -> Callable[[pd.Series], pd.Series]:
    """ISO dates rewritten as `2023/5/12` or `2023年5月12日` (invalid ones left alone)."""

    def apply(s: pd.Series) -> pd.Series:
        d = pd.to_datetime(s, format="%Y-%m-%d", errors="coerce")
        ok = d.notna().to_numpy()
        y, m, day = (p[ok].astype(int).astype(str) for p in (d.dt.year, d.dt.month, d.dt.day))
        out = s.copy()
        out[ok] = (y + year_sep + m + month_sep + day + end).to_numpy()
        return out

    return apply


def _style(frame: Frame, style: str, mask: np.ndarray, tpl: Template, rng: Rng) -> None:
    """Apply one spelling habit to the masked rows."""
    n = len(frame)
    bools = _keys(tpl, frame, lambda f: f.type == "bool" or f.key == "seismic_design")
    years = _keys(tpl, frame, lambda f: f.type == "year")
    dates = _keys(tpl, frame, lambda f: f.type == "date")
    if style == "thousands":
        _rewrite(frame, THOUSANDS_COLUMNS, mask, _thousands)
    elif style == "fullwidth":
        _rewrite(frame, FULLWIDTH_COLUMNS, mask & (rng.random(n) < 0.06), lambda s: s.str.translate(FULLWIDTH))
    elif style == "year_suffix":
        _rewrite(frame, years, mask & (rng.random(n) < 0.5), lambda s: s + "年")
    elif style == "year_month":

        def add_month(s: pd.Series) -> pd.Series:
            return s + [f"-{m:02d}" for m in rng.integers(1, 13, len(s))]

        _rewrite(frame, years[:1], mask & (rng.random(n) < 0.3), add_month)
    elif style in ("yn_bool", "youwu_bool"):
        yn = style == "yn_bool"
        for col in bools if yn else [c for c in YOUWU_COLUMNS if c in frame]:
            mapping = {"是": "Y", "否": "N"} if yn else {"是": "有", "否": "无"}
            frame.recode(col, mask & (rng.random(n) < 0.8), mapping)
    elif style in ("date_slash", "date_cn"):
        seps = ("/", "/", "") if style == "date_slash" else ("年", "月", "日")
        _rewrite(frame, dates, mask, _date_format(*seps))
    elif style in ("slash_unknown", "buxiang_unknown"):
        marker = "/" if style == "slash_unknown" else "不详"
        for col in _keys(tpl, frame, lambda f: not f.required and f.type not in ("text", "town_code")):
            frame.fill(col, mask & (rng.random(n) < 0.35) & frame.equals(col, ""), marker)
    elif style == "short_enum":
        frame.recode("structure_type", mask & (rng.random(n) < 0.7), {"土木(生土)": "土木"})
        frame.recode("site_class", mask & (rng.random(n) < 0.5), {"II": "Ⅱ", "III": "Ⅲ"})


def _apply_styles(frame: Frame, kind: str, specs: Mapping[str, FileSpec], rng: Rng) -> None:
    tpl = load_template(kind)
    for style in STYLE_ORDER:
        groups = [g for g, spec in specs.items() if style in spec.styles]
        mask = _in(frame.group, groups)
        if mask.any():
            _style(frame, style, mask, tpl, rng)


# =======================================================================================
# Defects
# =======================================================================================
def _largest_remainder(total: int, weights: Mapping[str, float],
                       floor: Mapping[str, int] | None = None) -> dict[str, int]:  # fmt: skip
    """Split total in proportion to weights (at least floor[k] each)."""
    floor = floor or {}
    w = np.fromiter(weights.values(), float)
    quota = total * w / w.sum()
    counts = {k: max(int(q), floor.get(k, 0)) for k, q in zip(weights, quota, strict=True)}
    rest = total - sum(counts.values())
    for i in np.argsort(-(quota - np.floor(quota)), kind="stable")[: max(rest, 0)]:
        counts[list(weights)[i]] += 1
    return counts


def _allocate(kind: str, n_rows: int, rate: float) -> dict[str, int]:
    """How many rows of each defect: rate of the rows, one of each must-have if there is room."""
    weights, musts = DEFECT_WEIGHTS[kind], DEFECT_MUSTS[kind]
    if n_rows == 0 or rate <= 0:
        return dict.fromkeys(weights, 0)
    floor = dict.fromkeys(musts, 1) if n_rows >= 10 * len(musts) else {}
    return _largest_remainder(max(round(rate * n_rows), len(floor)), weights, floor)


@dataclass
class Injector:
    """Overwrites chosen rows of one kind's frame with defects, and counts them."""

    kind: str
    frame: Frame
    rng: Rng
    town_name_rows: np.ndarray  # rows whose file has a 乡镇 column
    free: np.ndarray = field(init=False)  # rows not yet touched (nor used as a source)

    def __post_init__(self) -> None:
        self.free = np.ones(len(self.frame), bool)

    def run(self, plan: Mapping[str, int]) -> dict[str, int]:
        constrained = ("duplicate_id", "exact_duplicate", "town_mismatch")  # first, while rows are free
        counts = {}
        for name in sorted(plan, key=lambda d: d not in constrained):
            if plan[name]:
                counts[name] = getattr(self, name)(plan[name])
        return counts

    def take(self, k: int, eligible: np.ndarray | None = None) -> np.ndarray:
        pool = np.flatnonzero(self.free if eligible is None else self.free & eligible)
        rows = np.sort(self.rng.choice(pool, size=min(k, len(pool)), replace=False))
        self.free[rows] = False
        return rows

    def put(self, rows: np.ndarray, col: str, values: Sequence[str]) -> int:
        self.frame.set(col, rows, _choice(self.rng, values, len(rows)))
        return len(rows)

    def _paired(self, k: int) -> np.ndarray:
        """Rows whose previous row (same file) stays untouched, to copy from."""
        g = self.frame.group
        ok = np.r_[False, g[1:] == g[:-1]] & np.r_[False, self.free[:-1]]
        rows = self.take(k, ok)
        chained = np.isin(rows - 1, rows)
        self.free[rows[chained]] = True
        rows = rows[~chained]
        self.free[rows - 1] = False
        return rows

    def _from_table(self, k: int, table: Mapping[str, Sequence[str]]) -> int:
        rows = self.take(k)
        cols = _choice(self.rng, list(table), len(rows))
        return sum(self.put(rows[cols == col], col, values) for col, values in table.items())

    def missing_required(self, k: int) -> int:
        return self._from_table(k, dict.fromkeys(MISSING_COLUMNS[self.kind], MISSING_MARKERS))

    def non_numeric(self, k: int) -> int:
        return self._from_table(k, NON_NUMERIC[self.kind])

    def out_of_range(self, k: int) -> int:
        return self._from_table(k, OUT_OF_RANGE[self.kind])

    def not_allowed(self, k: int) -> int:
        return self._from_table(k, NOT_ALLOWED[self.kind])

    def coord_outside(self, k: int) -> int:
        rows = self.take(k)
        pick = self.rng.integers(0, len(OUTSIDE_COORDS), len(rows))
        lon, lat = ("start_lon", "start_lat") if self.kind == "pipelines" else ("lon", "lat")
        self.frame.set(lon, rows, [OUTSIDE_COORDS[i][0] for i in pick])
        self.frame.set(lat, rows, [OUTSIDE_COORDS[i][1] for i in pick])
        return len(rows)

    def town_unknown(self, k: int) -> int:
        return self.put(self.take(k), "town_code", UNKNOWN_TOWN_CODES)

    def town_mismatch(self, k: int) -> int:
        rows = self.take(k, self.town_name_rows)
        names = list(towns().values())
        current = [names.index(t) for t in self.frame.get("town_name", rows)]
        shift = self.rng.integers(1, len(names), len(rows))
        self.frame.set("town_name", rows, [names[(c + s) % len(names)] for c, s in zip(current, shift, strict=True)])
        return len(rows)

    def unit_unknown(self, k: int) -> int:
        return self.put(self.take(k), "responsible_unit", UNKNOWN_UNITS)

    def bad_date(self, k: int) -> int:
        return self.put(self.take(k), "survey_date", BAD_DATES)

    def year_after_survey(self, k: int) -> int:
        return self.put(self.take(k), "year_built", AFTER_SURVEY_YEARS)

    def duplicate_id(self, k: int) -> int:
        rows = self._paired(k)
        id_col = load_template(self.kind).id_keys[0]
        self.frame.set(id_col, rows, self.frame.get(id_col, rows - 1))
        return len(rows)

    def exact_duplicate(self, k: int) -> int:
        rows = self._paired(k)
        for col in list(self.frame.cols):
            self.frame.set(col, rows, self.frame.get(col, rows - 1))
        return len(rows)

    def span_gt_length(self, k: int) -> int:
        rows = self.take(k)
        span = pd.to_numeric(pd.Series(self.frame.get("max_span_m", rows)), errors="coerce").fillna(20)
        self.frame.set("total_length_m", rows, _num(span * self.rng.uniform(0.4, 0.8, len(rows))))
        return len(rows)

    def bad_check_digit(self, k: int) -> int:
        rows = self.take(k)
        codes = self.frame.get("site_id", rows)
        wrong = [c[:17] + str(self.rng.choice([x for x in CHARSET if x != c[17]])) for c in codes]
        self.frame.set("site_id", rows, wrong)
        return len(rows)

    def unknown_site(self, k: int) -> int:
        rows = self.take(k)
        known = set(self.frame.strings("site_id"))
        fresh = [c for c in _credit_codes(self.rng, len(rows) + len(known)) if c not in known]
        self.frame.set("site_id", rows, fresh[: len(rows)])
        return len(rows)

    def unknown_town_in_list(self, k: int) -> int:
        rows = self.take(k)
        cells = self.frame.get("town_codes", rows)
        self.frame.set("town_codes", rows, [c + ("、秦渠镇" if "、" in c else ";640302999") for c in cells])
        return len(rows)


# =======================================================================================
# Writing
# =======================================================================================
_NUMERIC = re.compile(r"^-?(0|[1-9]\d*)(\.\d+)?$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_NEEDS_QUOTES = r'[",\r\n]'


def _excel_cell(v: str) -> Any:
    """What a typed-in Excel cell holds: numbers and dates as such, the rest as text."""
    if v == "":
        return None
    if _NUMERIC.match(v):
        return float(v) if "." in v else int(v)
    if _ISO_DATE.match(v):
        try:
            return date.fromisoformat(v)
        except ValueError:
            return v
    return v


def _quote(cell: str) -> str:
    needs = "," in cell or '"' in cell or "\n" in cell or "\r" in cell
    return '"' + cell.replace('"', '""') + '"' if needs else cell


def _cells(col: pa.Array) -> pa.Array:
    """A column's CSV cells, quoted only where needed (QUOTE_MINIMAL, like Excel and pandas)."""
    if pa.types.is_dictionary(col.type):
        codes, vocab = _parts(col, len(col))
        return _text(_indexed(codes, [_quote(v) for v in vocab]))
    if not pa.types.is_string(col.type):
        return _text(col)  # numbers: nothing to quote
    return _quoted(_text(col))


def _quoted(col: pa.Array) -> pa.Array:
    needs = pc.match_substring_regex(col, _NEEDS_QUOTES)
    if not pc.any(needs).as_py():
        return col
    quoted = pc.binary_join_element_wise('"', pc.replace_substring(col, '"', '""'), '"', "")
    return pc.if_else(needs, quoted, col)


def _csv_bytes(cols: Sequence[pa.Array], headers: Sequence[str], encoding: str, newline: str) -> bytes:
    """A CSV file's bytes, built with Arrow (a million rows in about a second)."""
    head = ",".join(map(_quote, headers)) + newline
    lines = pc.binary_join_element_wise(*[_cells(c) for c in cols], ",")
    lines = pc.binary_join_element_wise(lines, "", newline)  # each line + newline
    whole = pa.ListArray.from_arrays(pa.array([0, len(lines)], pa.int32()), lines)
    body = pc.binary_join(whole, "")[0]
    if encoding.startswith("utf-8"):
        bom = b"\xef\xbb\xbf" if encoding == "utf-8-sig" else b""
        return bom + head.encode() + body.as_buffer().to_pybytes()
    return (head + body.as_py()).encode(encoding)  # GBK: raises if a value cannot be encoded


def _write_xlsx(cols: Sequence[pa.Array], headers: Sequence[str], path: Path) -> None:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "调查表"
    ws.append(list(headers))
    for row in zip(*[_text(c).to_pylist() for c in cols], strict=True):
        ws.append([_excel_cell(v) for v in row])
    wb.save(path)


def _headers(tpl: Template, cols: Sequence[str], spec: FileSpec, mixed: bool) -> list[str]:
    headers = [tpl.field(k).header if tpl.has(k) else "备注" for k in cols]
    if not mixed:
        return headers
    if spec.header_variant:
        headers = [_variant_header(h, i) for i, h in enumerate(headers)]
    own = {template: mine for mine, template in spec.mapping}
    return [own.get(h, h) for h in headers]


def _variant_header(header: str, i: int) -> str:
    """Full-width brackets and units, and the odd stray space, as typed in Excel."""
    h = HEADER_VARIANTS.get(header, header.replace("(", "（").replace(")", "）"))
    h = " " + h if i % 5 == 1 else h
    h = h + " " if i % 7 == 3 else h
    return h + "\u3000" if i == 9 else h


def _write_kind(out: Path, kind: str, frame: Frame, specs: Mapping[str, FileSpec], mixed: bool) -> list[Path]:
    tpl = load_template(kind)
    written = []
    for group, spec in specs.items():
        rows = np.flatnonzero(frame.group == group)
        if not len(rows):
            continue
        keys = [k for k in tpl.keys if k not in spec.drop] + (["remark"] if spec.remarks else [])
        index = pa.array(rows)
        cols = [frame.cols[k].take(index) for k in keys]
        headers = _headers(tpl, keys, spec, mixed)
        path = out / kind / spec.unit / ROUND / f"{spec.name}{'.xlsx' if mixed and spec.xlsx else '.csv'}"
        path.parent.mkdir(parents=True, exist_ok=True)
        if mixed and spec.xlsx:
            _write_xlsx(cols, headers, path)
        else:
            encoding, newline = (spec.encoding, spec.newline) if mixed else ("utf-8", "\n")
            path.write_bytes(_csv_bytes(cols, headers, encoding, newline))
        written.append(path)
        if mixed and spec.mapping:
            mapping = out / kind / spec.unit / "列映射.csv"
            pairs = [pa.array(list(side)) for side in zip(*spec.mapping, strict=True)]
            mapping.write_bytes(_csv_bytes(pairs, ["本单位列名", "模板列名"], "utf-8-sig", "\r\n"))
            written.append(mapping)
    return written


# =======================================================================================
# Orchestration
# =======================================================================================
@dataclass
class KindResult:
    frame: Frame
    specs: dict[str, FileSpec]
    defects: dict[str, int]
    planted: dict[str, int] = field(default_factory=dict)


def _finish(
    kind: str, frame: Frame, specs: dict[str, FileSpec], rng: Rng, rate: float, broken: np.ndarray | None = None
) -> KindResult:
    """Apply each file's value spellings, then inject the defects (sparing rows already broken)."""
    _apply_styles(frame, kind, specs, rng)
    with_name = [g for g, spec in specs.items() if "town_name" not in spec.drop]
    has_town = np.isin(frame.group, with_name) & ("town_name" in frame)
    injector = Injector(kind, frame, rng, has_town)
    if broken is not None:
        injector.free &= ~broken
    return KindResult(frame, specs, injector.run(_allocate(kind, len(frame), rate)))


def _one_file(unit: str, name: str, **kw: Any) -> dict[str, FileSpec]:
    return {unit: FileSpec(unit, name, **kw)}


def _hazchem(rng: Rng, n: int, rate: float) -> dict[str, KindResult]:
    frame, stocks, planted = _sites_frame(rng, n)
    sites = _finish("hazchem_sites", frame, _one_file("YJJ", "危险化学品单位基本情况"), rng, rate)
    sites.planted = planted
    # the department copies its own (possibly mistyped) codes into the inventory
    written = frame.strings("site_id")
    inventory = _inventory_frame(rng, written, stocks)
    typo = np.isin(np.array(inventory.strings("site_id"), dtype=object), [c for c in written if not is_valid(c)])
    inv = _finish("hazchem_inventory", inventory, _one_file("YJJ", "危险化学品储存明细"), rng, rate, typo)
    if typo.any():
        inv.defects["bad_check_digit"] = int(typo.sum())
    return {"hazchem_sites": sites, "hazchem_inventory": inv}


def generate(
    out_dir: Path,
    buildings: int = 20000,
    bridges: int = 150,
    sites: int = 40,
    pipelines: int = 15,
    seed: int = 2023,
    defect_rate: float = 0.03,
    formats: str = "mixed",
) -> dict[str, Any]:
    """Write a sample survey under out_dir; return the files, rows and defects injected."""
    if formats not in ("mixed", "csv"):
        raise ValueError(f"formats must be 'mixed' or 'csv', not {formats!r}")
    out, mixed = Path(out_dir), formats == "mixed"
    rng = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)]
    results: dict[str, KindResult] = {}
    if buildings > 0:
        frame = _buildings_frame(rng[0], buildings)
        results["buildings"] = _finish("buildings", frame, _building_specs(), rng[0], defect_rate)
    if bridges > 0:
        specs = _one_file("ZJJ", "桥梁调查", header_variant=True, styles=("date_slash",))
        results["bridges"] = _finish("bridges", _bridges_frame(rng[1], bridges), specs, rng[1], defect_rate)
    if sites > 0:
        results.update(_hazchem(rng[2], sites, defect_rate))
    if pipelines > 0:
        frame, planted = _pipelines_frame(rng[3], pipelines)
        specs = _one_file("FGJ", "油气长输管道调查", encoding="utf-8", newline="\n", styles=("slash_unknown",))
        crossings = frame.equals("fault_crossing", "是")  # no defect on a planted fault crossing: it reaches scoring
        results["pipelines"] = _finish("pipelines", frame, specs, rng[3], defect_rate, crossings)
        results["pipelines"].planted = planted
    files = [p for kind, r in results.items() for p in _write_kind(out, kind, r.frame, r.specs, mixed)]
    return _summary(out, files, results, formats, seed, defect_rate)


def _summary(out: Path, files: list[Path], results: Mapping[str, KindResult], formats: str,
             seed: int, rate: float) -> dict[str, Any]:  # fmt: skip
    totals = {d: sum(r.defects.get(d, 0) for r in results.values()) for d in DEFECT_KINDS}
    return {
        "out_dir": str(out), "round": ROUND, "formats": formats, "seed": seed, "defect_rate": rate,
        "files": sorted(p.relative_to(out).as_posix() for p in files),
        "bytes": sum(p.stat().st_size for p in files),
        "rows": {k: len(r.frame) for k, r in results.items()},
        "defects": totals, "defective_rows": sum(totals.values()),
        "defects_by_kind": {k: {d: c for d, c in r.defects.items() if c} for k, r in results.items()},
        "planted": {k: r.planted for k, r in results.items() if r.planted},
    }  # fmt: skip


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Generate a seeded sample survey of 利通区.")
    ap.add_argument("--out", type=Path, default=Path("data_raw"))
    ap.add_argument("--buildings", type=int, default=20000)
    ap.add_argument("--bridges", type=int, default=150)
    ap.add_argument("--sites", type=int, default=40)
    ap.add_argument("--pipelines", type=int, default=15)
    ap.add_argument("--seed", type=int, default=2023)
    ap.add_argument("--defect-rate", type=float, default=0.03)
    ap.add_argument("--formats", choices=("mixed", "csv"), default="mixed")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    summary = generate(a.out, a.buildings, a.bridges, a.sites, a.pipelines, a.seed, a.defect_rate, a.formats)
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    print(json.dumps(summary, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
