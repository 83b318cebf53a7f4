"""The setup code prepended to every built-in program: the same imports the public environment uses."""

SETUP_CODE = """from typing import *
from collections import *
from functools import *
from itertools import *
from heapq import *
from bisect import *
from math import *
import math
import string
import collections

inf = float('inf')
"""
