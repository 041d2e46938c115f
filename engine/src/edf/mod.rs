//! EDF, EDF+ and BDF reading and writing (issue 2).
